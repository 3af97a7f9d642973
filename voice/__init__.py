"""Audio engines for live calls: frames, VAD, Vosk ASR, Piper TTS (pure: no sockets, no DB)."""
