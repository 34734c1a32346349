"""Cases that come by SMS and the web, besides calls (Linyi: "通过电话、短信、网站接受市民诉求事项"). Pure: the
channels, the case number a citizen quotes, the SMS gateway's signed payload, a survey reply, the texts sent.

- The case number to quote (工单号, ``reference``): the local day the case was opened and seven digits, six
  random and a Luhn check digit, ``20261201-4830271``. It says nothing of how many cases there are or which came
  before (the database id stays internal), a digit misheard on the phone fails the check, and digits are what a
  citizen can read out. Unique in the database; a clash is drawn again (for a batch of ended calls' cases,
  within its transaction). A day has a million numbers: a big city's tens of thousands of cases take a few per
  cent of them, so clashes happen daily and cost a redraw.
- The gateway's webhook is signed: ``X-CTI-Timestamp`` (Unix seconds) and ``X-CTI-Signature: sha256=<hex>``,
  HMAC-SHA256 with the shared secret over ``<timestamp>.`` followed by the raw body. A timestamp more than
  ``max_skew`` seconds away is refused (a recorded request replayed later); within it, a replay carries a
  message id already seen and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

CHANNELS = {"phone": "电话", "sms": "短信", "web": "网页"}
MEDIA = ("sms", "web")  # GB/T 33358: "短信等其他媒体" are to be answered within ANSWER_WITHIN seconds
ANSWER_WITHIN = 180.0  # 3 minutes: a person (agent or supervisor) took a step on the case within it
REFERENCE_DRAWS = 5  # case numbers drawn for a case before giving up (a clash: see the case number above)
_REFERENCE = re.compile(r"^([0-9]{8})-([0-9]{7})$")
SIGNATURE_PREFIX = "sha256="


# -- the case number ---------------------------------------------------------------------------------

def luhn_digit(digits: str) -> str:
    """The Luhn check digit of ``digits`` (every second digit from the right doubled)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def new_reference(day: date, rng: random.Random | random.SystemRandom) -> str:
    """A case number for a case opened on ``day`` (local): the day, six random digits and their check digit."""
    random_part = f"{rng.randrange(1_000_000):06d}"
    stamp = day.strftime("%Y%m%d")
    return f"{stamp}-{random_part}{luhn_digit(stamp + random_part)}"


def is_reference(text: str) -> bool:
    """Whether ``text`` is a well-formed case number (its check digit right)."""
    found = _REFERENCE.fullmatch(text)
    return found is not None and luhn_digit(found[1] + found[2][:-1]) == found[2][-1]


# -- the gateway's signature ----------------------------------------------------------------------------

def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What ``X-CTI-Signature`` holds for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_problem(secret: str, timestamp: str | None, given: str | None, body: bytes, now: float,
                      max_skew: float) -> str | None:
    """Why a request is not the gateway's (None: it is). Compared in constant time: a guess learns nothing
    from how long the refusal took."""
    if not timestamp or not given:
        return "X-CTI-Timestamp and X-CTI-Signature are required"
    if not timestamp.isdigit():
        return "X-CTI-Timestamp must be Unix seconds"
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.strip().encode()):
        return "the signature does not match the body"
    if abs(now - int(timestamp)) > max_skew:
        return f"X-CTI-Timestamp is more than {max_skew:g} s away from cti's clock"
    return None


# -- the gateway's payload ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InboundSms:
    """A text a citizen sent to the hotline's number, as the gateway reports it."""

    message_id: str
    sender: str  # "from"
    to: str
    text: str
    received_at: datetime


def inbound(fields: dict[str, Any]) -> InboundSms | str:
    """The payload (its fields already checked by the route table), or the name of the field that is wrong."""
    try:
        received = datetime.fromisoformat(str(fields["received_at"]).replace("Z", "+00:00"))
    except ValueError:
        return "received_at"
    if received.tzinfo is None:
        return "received_at"
    if not fields["text"].strip():
        return "text"
    return InboundSms(fields["message_id"], fields["from"], fields["to"], fields["text"].strip(), received)


def survey_answer(text: str) -> str | None:
    """A reply to the satisfaction SMS: 1, 2 or 3 alone (full-width digits too, ``１``), else None."""
    plain = unicodedata.normalize("NFKC", text).strip().rstrip("。.")
    return plain if plain in ("1", "2", "3") else None


# -- what is sent -----------------------------------------------------------------------------------------

def receipt_text(reference: str) -> str:
    """The automatic acknowledgement of an SMS case (no person read it yet: it is not an answer)."""
    return (f"【12345】您的诉求已受理，工单号{reference}。我们将尽快处理，办理情况请拨打12345并报工单号查询。")


def survey_text(reference: str) -> str:
    return (f"【12345】您的诉求（工单号{reference}）已办结。请回复数字评价：1 满意，2 基本满意，3 不满意。")


def web_answer(reference: str) -> dict[str, str]:
    """What the web form tells the citizen: the case number and what happens next; nothing they wrote."""
    return {"reference": reference,
            "next": "您的诉求已受理。工作人员将在3分钟内响应，按规定时限转交承办单位办理，办结后回访您留下的电话。"
                    "查询或补充情况，请拨打12345并报工单号。"}
