"""The recorded terminal behind the stand-in Session: answers requests from a JSON recording.

It answers like the refdata service: whatever securities and fields a request names, in one
message per security for historical requests and one message for reference requests, with
securityError for a security it does not know and fieldExceptions for a field it lacks. So the
caller's chunking decides the requests, and the answers do not depend on it.

And it refuses or bends what a terminal would: an override it does not know is a
fieldException on every field asked (so a misnamed members override gives no members); daily
prices come split-adjusted unless every adjustment flag is sent false (this terminal's DPDF
screen says "adjust", which adjustmentFollowDPDF follows unless told not to); quarterly
fundamentals are the latest, restated values unless FILING_STATUS = OR asks for the originals,
and a company whose fiscal quarters are not calendar quarters has them dated at calendar
quarter ends unless periodicityAdjustment = FISCAL is sent. A recording can name overrides this
terminal refuses (`refused_overrides`: a terminal without first-reported values refuses
FILING_STATUS).
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


# overrides this terminal knows (Bloomberg's names); any other is refused
KNOWN_OVERRIDES = ("END_DATE_OVERRIDE", "FILING_STATUS", "EQY_FUND_CRNCY")
ADJUSTMENT_FLAGS = (
    "adjustmentNormal",
    "adjustmentAbnormal",
    "adjustmentSplit",
    "adjustmentFollowDPDF",
)
SPLIT_TYPES = ("Stock Split", "Stock Dividend", "Bonus")


class RecordedTerminal:
    def __init__(self, path: str):
        with open(path, encoding="utf-8") as fh:
            self.recording = json.load(fh)
        # a terminal without an entitlement refuses its override as an unknown one
        refused = self.recording.get("refused_overrides", [])
        self.known = tuple(k for k in KNOWN_OVERRIDES if k not in refused)

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
        unknown = [k for k in asked["overrides"] if k not in self.known]
        out = []
        for seq, sec in enumerate(asked["securities"]):
            if sec not in data:
                out.append(_unknown(sec, seq))
                continue
            fields, exceptions = {}, []
            for field in asked["fields"]:
                if unknown:
                    exceptions.append(
                        _field_exception(field, f"Invalid override field id: {unknown[0]}")
                    )
                    continue
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
            unknown = [k for k in asked["overrides"] if k not in self.known]
            if periodicity != "DAILY" and asked["overrides"].get("FILING_STATUS") != "OR":
                restated = data[sec].get(periodicity + "_RESTATED", {})
                series = {f: {**v, **restated.get(f, {})} for f, v in series.items()}
            if periodicity != "DAILY" and asked.get("periodicityAdjustment") != "FISCAL":
                # not asked on fiscal periods: a fiscal period is dated at the end of the
                # calendar period it falls in
                calendar = data[sec].get("CALENDAR_DATES", {})
                series = {f: {calendar.get(d, d): x for d, x in v.items()}
                          for f, v in series.items()}  # fmt: skip
            factor = self._split_factor(sec) if periodicity == "DAILY" and _adjusts(asked) else None
            for field in asked["fields"]:
                values = series.get(field)
                if values is None or unknown:
                    exceptions.append(_field_exception(field))
                    continue
                if factor is not None and field.startswith("PX_") and field != "PX_VOLUME":
                    values = {d: None if v is None else v / factor(d) for d, v in values.items()}
                elif factor is not None and field == "PX_VOLUME":
                    values = {d: None if v is None else v * factor(d) for d, v in values.items()}
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

    def _split_factor(self, sec: str):
        """day -> the product of the share ratios of the splits after it (and of a spin-off's
        1 / its price factor): a capital-change-adjusted price is the raw one divided by it (as
        a terminal adjusting for capital changes)."""
        reference = self.recording.get("reference", {}).get(sec, {})
        rows = reference.get("DVD_HIST_ALL", [])
        spun = [(r["Adjustment Date"], 1 / r["Adjustment Factor"])
                for r in reference.get("EQY_DVD_ADJUST_FACT", [])
                if r["Adjustment Factor Operator Type"] == 2]  # fmt: skip
        splits = [
            (
                r["Ex-Date"],
                1 + r["Dividend Amount"]  # a stock dividend's or bonus's fraction
                if r["Dividend Type"] != "Stock Split" and r["Dividend Amount"] < 1
                else r["Dividend Amount"],  # a split's ratio, below 1 for a reverse split
            )
            for r in rows
            if r["Dividend Type"] in SPLIT_TYPES
        ] + spun

        def factor(day: str) -> float:
            out = 1.0
            for ex, ratio in splits:
                if day < ex:
                    out *= ratio
            return out

        return factor


def _adjusts(asked: dict) -> bool:
    """Whether a daily request gets adjusted prices: any flag not sent false (DPDF: adjust)."""
    return any(asked.get(flag) is not False for flag in ADJUSTMENT_FLAGS)


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


def _field_exception(field: str, message: str = "Field not valid") -> dict:
    return {
        "fieldId": field,
        "errorInfo": {
            "source": "recorded",
            "code": 9,
            "category": "BAD_FLD",
            "message": message,
            "subcategory": "INVALID_FIELD",
        },
    }
