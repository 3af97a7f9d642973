-- The language pack (Vosk model + Piper voice) that served each call: which recognizer heard
-- the customer and which voice spoke, so a call's turns can be read against its models and
-- calls of several languages in one daemon can be told apart. NULL: calls before packs.
ALTER TABLE calls ADD COLUMN language_pack text;
