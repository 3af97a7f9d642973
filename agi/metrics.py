"""Prometheus metrics of the live call path (names and labels fixed across the team)."""

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

ACTIVE_CALLS = Gauge("outdial_active_calls", "Call sessions in progress.", ["campaign"])
GREETING_LATENCY = Histogram(
    "outdial_greeting_latency_seconds",
    "AudioSocket connect to the first bot audio frame.",
    ["campaign"],
    buckets=_LATENCY_BUCKETS,
)
REPLY_LATENCY = Histogram(
    "outdial_reply_latency_seconds",
    "End of customer speech to the first frame of the bot's reply.",
    ["campaign"],
    buckets=_LATENCY_BUCKETS,
)
PROCESSING_LATENCY = Histogram(
    "outdial_processing_latency_seconds",
    "Endpoint (end of trailing silence) to the first frame of the bot's reply.",
    ["campaign"],
    buckets=_LATENCY_BUCKETS,
)
ASR_RTF = Histogram(
    "outdial_asr_rtf",
    "ASR decoding time over audio duration, per utterance.",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0),
)
TTS_SECONDS = Histogram(
    "outdial_tts_seconds",
    "Time to the first synthesized audio of a bot prompt (0 when cached).",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0),
)
TRANSFERS = Counter("outdial_transfers_total", "Calls handed to a human.", ["campaign", "reason"])
COMPLIANCE_HITS = Counter(
    "outdial_compliance_hits_total",
    "Sensitive-word and opt-out hits (category and direction are small fixed sets).",
    ["category", "direction"],
)
AGITATION = Histogram(
    "outdial_agitation_score",
    "Agitation score per customer utterance.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
AUDIOSOCKET_REJECTED = Counter(
    "outdial_audiosocket_rejected_total",
    "AudioSocket connections or frames refused.",
    ["reason"],
)
FASTAGI_REFUSED = Counter(
    "outdial_fastagi_refused_total",
    "FastAGI connections refused or dropped: capacity, header_timeout, bad_header, reply_timeout.",
    ["reason"],
)
FASTAGI_CONNECTIONS = Gauge("outdial_fastagi_connections", "Open FastAGI connections.")
LATE_FRAMES = Counter(
    "outdial_late_frames_total", "Media clock ticks skipped because the loop was late."
)
STALLS_FORGIVEN = Counter(
    "outdial_stall_forgiven_seconds_total",
    "Event-loop stalls left out of callers' silence timers (summed over calls).",
)
STARVED_FRAMES = Counter(
    "outdial_starved_frames_total",
    "Silence frames sent inside a prompt because its synthesis fell behind the clock.",
)
REPLIES_AHEAD = Counter(
    "outdial_replies_ahead_total",
    "Replies synthesised ahead of the answer, by what became of them: used, late, unused.",
    ["disposition"],
)
CALL_FAILURES = Counter(
    "outdial_call_failures_total",
    "Calls the bot failed (the customer heard the fallback), by where: setup, admission, "
    "media_connect, greeting, hearing, understanding, deciding, speaking, media, session.",
    ["stage"],
)
SIGNAL_FAILURES = Counter(
    "outdial_optional_signal_failures_total",
    "Optional per-utterance signals that failed and were left out (the call went on).",
    ["signal"],
)
ECHO_FRAMES = Counter(
    "outdial_echo_frames_total",
    "Caller-side frames judged the bot's own prompt echoed back by the line, not taken for "
    "the caller's speech.",
)
WORD_TIMES_CLAMPED = Counter(
    "outdial_word_times_clamped_total",
    "ASR word times that fell outside the utterance audio and were clamped into it.",
)
GRADES = Counter(
    "outdial_call_grades",
    "Calls graded by the script's grading rules, by grade (A best, F worst).",
    ["script", "variant", "grade"],
)
PACK_MEMORY = Gauge(
    "outdial_pack_memory_bytes",
    "Resident memory the process grew by loading each language pack (model, voice, first "
    "recognizers).",
    ["pack", "language"],
)
PACK_CALLS = Counter(
    "outdial_pack_calls_total",
    "Calls whose recognizer and voice came from each language pack.",
    ["pack", "script"],
)
