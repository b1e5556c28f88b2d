"""Answers (L3): the JSON schema a model is asked for, and a tolerant parser of what it returns.

Model output is untrusted text: it is only ever parsed as JSON data, never evaluated. The parser
accepts what models commonly wrap an answer in: a reasoning block (<think>...</think>), a code
fence, prose before and after, single quotes, trailing commas, a lower-case decision or a
confidence written as "85%". The confidence has one scale, 0 to 100: a number outside it is
invalid, and one inside it is never rescaled (0.5 means 0.5, not 50). Each result has a parse
status and keeps the raw text.
"""

from __future__ import annotations

import dataclasses
import json
import re

DECISIONS = ("BUY", "SELL", "HOLD")
# The answer, in the order the prompt (template v2) asks for it: the decision first, a confidence
# from 0 to 100 with decimals allowed, a short reason, then the ratios the model computed. The
# schema servers get (response_format) and the regular expression local decoding is held to say
# the same thing, so prompt, schema and constraint agree.
MAX_REASON = 200
MAX_RATIOS = 8
SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": list(DECISIONS)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 100},
        "reason": {"type": "string", "maxLength": MAX_REASON},
        "ratios": {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "maxProperties": MAX_RATIOS,
        },
    },
    "required": ["decision", "confidence", "reason", "ratios"],
    "additionalProperties": False,
}
CONSTRAINED_SCHEMA = SCHEMA  # for servers that constrain decoding (response_format)
_NUMBER = r"-?(0|[1-9][0-9]{0,8})(\.[0-9]{1,4})?"
_CONFIDENCE = r"(100(\.0{1,2})?|[1-9]?[0-9](\.[0-9]{1,2})?)"  # 0 to 100, never negative
_RATIO = rf'"[a-z][a-z0-9_]{{0,29}}": {_NUMBER}'
# the same answer as a regular expression, for local constrained decoding (lm-format-enforcer
# does not enforce a schema's numeric ranges; a pattern does)
ANSWER_PATTERN = (
    rf'\{{"decision": "(BUY|SELL|HOLD)", "confidence": {_CONFIDENCE}, '
    rf'"reason": "[^"\\\n]{{1,{MAX_REASON}}}", '
    rf'"ratios": \{{({_RATIO}(, {_RATIO}){{0,{MAX_RATIOS - 1}}})?\}}\}}'
)

# parse statuses
OK = "ok"  # valid JSON object with valid fields
REPAIRED = "repaired"  # valid after tolerant fixes (quotes, commas, case, "%")
TRUNCATED = "truncated"  # the reply stopped at the token limit before the object closed
NO_JSON = "no_json"  # no JSON object in the reply
INVALID = "invalid"  # an object, but a field is missing or out of range
STATUSES = (OK, REPAIRED, TRUNCATED, NO_JSON, INVALID)
PARSED = (OK, REPAIRED)

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


@dataclasses.dataclass(frozen=True)
class Answer:
    status: str
    decision: str | None = None
    confidence: float | None = None
    reason: str | None = None
    ratios: dict | None = None
    error: str | None = None


def strip_reasoning(text: str) -> str:
    """The reply after a reasoning block; an unclosed <think> means it never got to the answer.
    Some chat templates put the opening <think> in the prompt, so the reply holds only the
    closing tag: everything before a lone </think> is reasoning (a draft decision there is not
    the answer)."""
    text = _THINK.sub("", text)
    if re.search(r"<think>", text, re.I):
        return ""
    closing = list(re.finditer(r"</think>", text, re.I))
    return text[closing[-1].end() :] if closing else text


def parse(text: str, truncated: bool = False, reasoning: bool = False) -> Answer:
    """Find and validate the decision object in a model's reply. `reasoning`: the model was
    asked to reason first, so a reply cut off (`truncated`) before its closing </think> holds
    only a draft, whatever decision it mentions (the opening tag may be in the prompt)."""
    if reasoning and truncated and not re.search(r"</think>", text, re.I):
        return Answer(TRUNCATED, error="the reply stopped inside its reasoning (no </think>)")
    body = strip_reasoning(text)
    if not body.strip() and re.search(r"<think>", text, re.I):
        return Answer(TRUNCATED if truncated else NO_JSON, error="reply ended inside <think>")
    fenced = _FENCE.findall(body)
    candidates = fenced + [body] if fenced else [body]
    saw_open = False
    for candidate in candidates:
        for blob, closed in _objects(candidate):
            saw_open = True
            if not closed:
                continue
            data, repaired = _load(blob)
            if data is None:
                continue
            answer = _validate(data, repaired)
            if answer.status in PARSED or "decision" in data:
                return answer
    if truncated or (saw_open and body.rstrip()[-1:] != "}"):
        return Answer(TRUNCATED, error="the reply stopped before the JSON object closed")
    return Answer(NO_JSON, error="no JSON object with a decision in the reply")


def _objects(text: str):
    """Balanced {...} spans (outermost), in order; an unbalanced tail is yielded as not closed."""
    depth, start, in_str, quote, escape = 0, None, False, "", False
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote:
                in_str = False
            continue
        if ch in "\"'" and depth:
            in_str, quote = True, ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start : i + 1], True
    if depth:
        yield text[start:], False


def _load(blob: str) -> tuple[dict | None, bool]:
    try:
        data = json.loads(blob, strict=False)  # raw control characters inside strings
        return (data, False) if isinstance(data, dict) else (None, False)
    except json.JSONDecodeError:
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", blob)  # trailing commas
    fixed = re.sub(r"(?<![\w\\])'([^'\n]*?)'(?=\s*[:,}\]])", r'"\1"', fixed)  # 'single' quotes
    fixed = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:", r'\1"\2":', fixed)  # bare keys
    try:
        data = json.loads(fixed, strict=False)
        return (data, True) if isinstance(data, dict) else (None, True)
    except json.JSONDecodeError:
        return None, True


def _validate(data: dict, repaired: bool) -> Answer:
    lowered = {str(k).lower(): v for k, v in data.items()}
    decision = lowered.get("decision")
    confidence = lowered.get("confidence")
    reason = lowered.get("reason")
    ratios = lowered.get("ratios") if isinstance(lowered.get("ratios"), dict) else None
    if isinstance(decision, str) and decision.strip().upper() != decision:
        repaired = True
    decision = decision.strip().upper() if isinstance(decision, str) else None
    if decision not in DECISIONS:
        return Answer(
            INVALID, error=f"decision {lowered.get('decision')!r} is not BUY, SELL or HOLD"
        )
    if isinstance(confidence, str):
        text = confidence.strip().rstrip("%").strip()
        try:
            confidence, repaired = float(text), True
        except ValueError:
            confidence = None
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return Answer(INVALID, decision=decision, error="confidence is not a number")
    # one scale end to end: 0-100, as the template says. A 0.5 is a confidence of 0.5 (low), never
    # rescaled to 50: a model that answers on 0-1 is flagged by the session, not reinterpreted
    if not 0 <= confidence <= 100:
        return Answer(INVALID, decision=decision, error=f"confidence {confidence} is not in 0-100")
    return Answer(
        REPAIRED if repaired else OK,
        decision=decision,
        confidence=float(confidence),
        reason=str(reason)[:1000] if reason is not None else "",
        ratios=ratios,
    )
