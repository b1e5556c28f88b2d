"""The recorded terminal behind the stand-in Session: answers requests from a JSON recording.

It answers like the refdata service: whatever securities and fields a request names, in one
message per security for historical requests and one message for reference requests, with
securityError for a security it does not know and fieldExceptions for a field it lacks. So the
caller's chunking decides the requests, and the answers do not depend on it.
"""

from __future__ import annotations

import datetime as dt
import json
import re

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _value(v):
    """Dates come back from the SDK as datetime.date; the recording stores them as ISO text."""
    if isinstance(v, str) and _DATE.match(v):
        return dt.date.fromisoformat(v)
    if isinstance(v, dict):
        return {k: _value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v


def _ymd(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}"


class RecordedTerminal:
    def __init__(self, path: str):
        with open(path, encoding="utf-8") as fh:
            self.recording = json.load(fh)

    def answer(self, asked: dict) -> list[tuple[str, dict]]:
        op = asked["operation"]
        if op == "ReferenceDataRequest":
            return [("ReferenceDataResponse", self._reference(asked))]
        if op == "HistoricalDataRequest":
            return self._historical(asked)
        raise ValueError(f"the recorded terminal does not answer {op}")

    def _reference(self, asked: dict) -> dict:
        data = self.recording.get("reference", {})
        key_suffix = "".join(f"|{k}={v}" for k, v in sorted(asked["overrides"].items()))
        out = []
        for seq, sec in enumerate(asked["securities"]):
            if sec not in data:
                out.append(_unknown(sec, seq))
                continue
            fields, exceptions = {}, []
            for field in asked["fields"]:
                rec = data[sec]
                value = rec.get(field + key_suffix, rec.get(field))
                if value is None:
                    exceptions.append(_field_exception(field))
                else:
                    fields[field] = _value(value)
            out.append(
                {
                    "security": sec,
                    "sequenceNumber": seq,
                    "fieldExceptions": exceptions,
                    "fieldData": fields,
                }
            )
        return {"securityData": out}

    def _historical(self, asked: dict) -> list[tuple[str, dict]]:
        data = self.recording.get("historical", {})
        periodicity = asked.get("periodicitySelection", "DAILY")
        start = _ymd(str(asked.get("startDate", "19000101")))
        end = _ymd(str(asked.get("endDate", "29991231")))
        messages = []
        for seq, sec in enumerate(asked["securities"]):
            series = data.get(sec, {}).get(periodicity)
            if series is None:
                body = _unknown(sec, seq)
                body["fieldData"] = []
                messages.append(("HistoricalDataResponse", {"securityData": body}))
                continue
            rows: dict[str, dict] = {}
            exceptions = []
            for field in asked["fields"]:
                values = series.get(field)
                if values is None:
                    exceptions.append(_field_exception(field))
                    continue
                for date, value in values.items():
                    if start <= date <= end and value is not None:
                        rows.setdefault(date, {"date": dt.date.fromisoformat(date)})[field] = (
                            _value(value)
                        )
            body = {
                "security": sec,
                "sequenceNumber": seq,
                "fieldExceptions": exceptions,
                "fieldData": [rows[d] for d in sorted(rows)],
            }
            messages.append(("HistoricalDataResponse", {"securityData": body}))
        return messages


def _unknown(sec: str, seq: int) -> dict:
    return {
        "security": sec,
        "sequenceNumber": seq,
        "securityError": {
            "source": "recorded",
            "code": 15,
            "category": "BAD_SEC",
            "message": "Unknown/Invalid securityInvalid Security [nid:1]",
            "subcategory": "INVALID_SECURITY",
        },
        "fieldExceptions": [],
        "fieldData": {},
    }


def _field_exception(field: str) -> dict:
    return {
        "fieldId": field,
        "errorInfo": {
            "source": "recorded",
            "code": 9,
            "category": "BAD_FLD",
            "message": "Field not valid",
            "subcategory": "INVALID_FIELD",
        },
    }
