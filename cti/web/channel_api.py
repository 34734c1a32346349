"""Cases that come by the web and by SMS (cti.cases.channels): the public web form's route and the SMS gateway's
webhook. Both are public (no token): the form is bounded per client address and answers only the case number
and what happens next; the gateway proves itself by signing each request with the shared secret."""

from __future__ import annotations

import logging
import math
import random
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from cti.cases.channels import inbound, new_reference, signature_problem, web_answer
from cti.cases.model import CATEGORIES
from cti.web import schemas
from cti.web.api import CONTEXT, client_address, ctx, hold, routes
from cti.web.case_api import CONTENT, NAME, PLACE
from cti.web.routes import PUBLIC, ApiError, Call, Field, number_field
from cti.web.schemas import choice, nullable, obj, ref, text

log = logging.getLogger(__name__)
HONEYPOT = "website"  # a field the form hides from people: whatever fills it is a robot
schemas.COMPONENTS.update({
    "RequestReceipt": obj({"reference": text("the case number to quote (工单号): the day and seven digits"),
                           "next": text("what happens next, in Chinese")},
                          "A request from the web form received: nothing of what was sent is given back"),
    "SmsReceived": obj({"outcome": choice(("case", "survey", "seen"), "case: a new case; survey: the answer to a "
                                          "satisfaction SMS, given to its case; seen: the message id was reported "
                                          "before, nothing changed"),
                        "reference": nullable(text("the case's number"))}, "An SMS from the gateway taken")})


async def _bounded(request: web.Request) -> None:
    """The web form's bound per client address (cti.auth_throttle; behind a proxy, web.forwarded_for), counted
    before the body is read, so that a flood of malformed requests counts too."""
    context = request.app[CONTEXT]
    wait = context.form_throttle.attempt(client_address(request, context.forwarded_for))
    if wait > 0:
        seconds = math.ceil(wait)
        await hold(min(context.refusal_hold, wait))
        raise ApiError(429, "too_many_requests", f"too many requests from this address: try again in {seconds} s",
                       {"retry_after": seconds}, headers={"Retry-After": str(seconds)})


@routes.add("POST", "/api/requests", roles=PUBLIC, guard=_bounded,
            summary="The public web form (网上诉求): a citizen's request becomes a case that came by the web; the "
                    "answer is its case number and what happens next, nothing of what was sent (public: no "
                    "sign-in; bounded per client address)",
            body={"category": Field(required=True, choices=tuple(CATEGORIES)),
                  "content": Field(required=True, max_length=CONTENT, line=False, description="the request"),
                  "caller_number": number_field("the citizen's telephone number, for the callback", required=True),
                  "caller_name": Field(max_length=NAME), "location": Field(max_length=PLACE),
                  "confidential": Field(bool, description="not to be named to the handling unit"),
                  HONEYPOT: Field(max_length=PLACE, description="leave empty (hidden from people; a robot fills "
                                                                "it, and its request makes no case)")},
            response=ref("RequestReceipt"),
            errors={429: "too_many_requests: too many requests from the client address (Retry-After, "
                         "details.retry_after)"})
async def web_request(call: Call) -> dict[str, str]:
    body, cases = call.body, ctx(call).cases
    if body.get(HONEYPOT):  # answered as any other, so that the robot learns nothing; nothing is kept
        log.info("web form: the hidden field was filled (a robot): no case")
        return web_answer(new_reference(datetime.now(cases.zone).date(), random.SystemRandom()))
    case = await cases.web_request(caller_number=body["caller_number"], caller_name=body.get("caller_name", ""),
                                   category=body["category"], content=body["content"],
                                   location=body.get("location", ""), confidential=body.get("confidential", False))
    assert case.reference is not None
    return web_answer(case.reference)


async def _signed(request: web.Request) -> None:
    """The gateway's signature over the raw body, before anything of it is read (cti.cases.channels)."""
    settings = request.app[CONTEXT].sms
    if not settings.secret:
        raise ApiError(404, "sms_not_configured", "no SMS gateway is configured (sms.secret, CTI_SMS_SECRET)")
    problem = signature_problem(settings.secret, request.headers.get("X-CTI-Timestamp"),
                                request.headers.get("X-CTI-Signature"), await request.read(), time.time(),
                                settings.max_skew)
    if problem is not None:
        log.warning("SMS webhook refused from %s: %s", request.remote, problem)
        raise ApiError(401, "bad_signature", problem)


@routes.add("POST", "/api/sms/inbound", roles=PUBLIC, guard=_signed,
            summary="The SMS gateway's webhook: a citizen's text to the hotline becomes a case that came by SMS "
                    "(acknowledged by SMS with its case number), or answers a satisfaction SMS; signed with the "
                    "shared secret (public: no token)",
            headers={"X-CTI-Timestamp": Field(required=True, description="Unix seconds when it was signed; more "
                                                                         "than sms.max_skew (300 s) away: 401"),
                     "X-CTI-Signature": Field(required=True, description="sha256=<hex>: HMAC-SHA256 with the "
                                              "shared secret over '<X-CTI-Timestamp>.' followed by the raw body")},
            body={"message_id": Field(required=True, max_length=128, description="the gateway's id of the message: "
                                      "reported again, it changes nothing"),
                  "from": number_field("the citizen's number", required=True),
                  "to": number_field("the hotline's number it was sent to", required=True),
                  "text": Field(required=True, max_length=CONTENT, line=False, description="what the citizen wrote"),
                  "received_at": Field(required=True, max_length=40, format="date-time",
                                       description="when the gateway received it (ISO 8601 with its offset)")},
            response=ref("SmsReceived"),
            errors={401: "bad_signature: no signature, a wrong one, or a timestamp out of the window",
                    404: "sms_not_configured: no shared secret is set (the route is not there)"})
async def sms_inbound(call: Call) -> dict[str, Any]:
    sms = inbound(call.body)
    if isinstance(sms, str):
        raise ApiError(422, "invalid", "invalid body", {"fields": {sms: "expected an ISO 8601 time with its offset"
                                                                   if sms == "received_at" else "empty"}})
    outcome, case = await ctx(call).cases.sms_received(sms)
    return {"outcome": outcome, "reference": case.reference if case is not None else None}
