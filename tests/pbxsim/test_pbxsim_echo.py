"""pbxsim's line echo (pbxsim.customer.Mouth): the bot's own audio comes back attenuated after
the hybrid's short fixed delay, however the customer's side keeps its sending pace."""

from __future__ import annotations

import time
from typing import cast

import numpy as np

from pbxsim.call import Call
from pbxsim.customer import ECHO_BACKLOG_FRAMES, ECHO_DELAY_S, Mouth
from pbxsim.scenario import Media

SILENT = bytes(320)


def bot_frame(level: int) -> bytes:
    return np.full(160, level, np.int16).tobytes()


def echo_line() -> Mouth:
    media = Media(line="trunk", echo_db=-20.0, framing="asterisk")
    return Mouth(cast(Call, None), media, seed=1)  # echo needs no call: nothing is sent


def peak(payload: bytes) -> int:
    return int(np.abs(np.frombuffer(payload, "<i2")).max())


def test_the_echo_comes_back_attenuated_after_the_fixed_delay() -> None:
    mouth = echo_line()
    mouth.hear_bot(bot_frame(10_000))
    assert peak(mouth._with_echo(SILENT)) == 0  # not due yet
    time.sleep(ECHO_DELAY_S + 0.01)
    assert peak(mouth._with_echo(SILENT)) == 1_000  # -20 dB


def test_ticks_the_customer_missed_do_not_delay_the_echo_that_follows() -> None:
    """A stalled customer side used to keep every frame the bot sent meanwhile and echo it
    later and later; a line's echo delay does not grow."""
    mouth = echo_line()
    for _ in range(50):  # a second of the bot's audio while the customer's side sent nothing
        mouth.hear_bot(bot_frame(10_000))
    time.sleep(ECHO_DELAY_S + 0.01)
    assert peak(mouth._with_echo(SILENT)) == 1_000
    mouth.hear_bot(bot_frame(20_000))
    time.sleep(ECHO_DELAY_S + 0.01)
    heard = [peak(mouth._with_echo(SILENT)) for _ in range(ECHO_BACKLOG_FRAMES + 1)]
    assert 2_000 in heard
