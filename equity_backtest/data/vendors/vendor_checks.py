"""Checks of the vendor settings in parameters.py (Bloomberg's beyond the basics, WRDS's and
Datastream's), called by config's validation with its `bad(name, why)` message maker.

Kept apart from config so that each vendor's rules sit beside its field lists, and config stays
the one list of settings."""

from __future__ import annotations


def validate(p, bad) -> None:
    """Raise bad(...) for the first vendor setting that cannot work."""
    _wrds(p, bad)
    _datastream(p, bad)


def _datastream(p, bad) -> None:
    for name in ("ds_chunk_tickers", "ds_chunk_fields", "ds_padding_days"):
        if not isinstance(getattr(p, name), int) or getattr(p, name) < 1:
            raise bad(name, "must be a whole number of at least 1")
    if p.ds_retries < 0 or p.ds_retry_wait_s < 0 or p.ds_report_lag_days < 0:
        raise bad("ds_retries", "retries, their wait and ds_report_lag_days must not be negative")
    for name in ("ds_split_tolerance", "ds_ri_tolerance", "ds_low_price"):
        if not isinstance(getattr(p, name), int | float) or not getattr(p, name) >= 0:
            raise bad(name, "must be a number >= 0")
    for name in ("ds_market_fields", "ds_fundamental_fields", "ds_metadata_fields"):
        if not isinstance(getattr(p, name), dict):
            raise bad(name, "must map our column names to Datastream datatypes")
    needed = {"unadjusted_close", "close", "volume"} - set(p.ds_market_fields)
    if needed:
        raise bad("ds_market_fields", f"lacks {sorted(needed)} (UP, P and VO make the log)")
    if p.ds_frequency not in ("daily", "monthly"):
        raise bad("ds_frequency", "must be 'daily' or 'monthly'")
    if p.ds_fundamental_frequency not in ("Q", "Y"):
        raise bad("ds_fundamental_frequency", "must be 'Q' (interim) or 'Y' (annual)")


def _wrds(p, bad) -> None:
    choices = {
        "wrds_format": ("ciz", "legacy"),
        "wrds_frequency": ("daily", "monthly"),
        "wrds_sector": ("gics", "sic"),
        "wrds_fundamentals": ("fundq", "snapshot"),
        "wrds_sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    }
    for name, allowed in choices.items():
        if getattr(p, name) not in allowed:
            raise bad(name, f"choose one of {', '.join(allowed)}")
    for name in ("wrds_chunk_permnos", "wrds_chunk_years"):
        if getattr(p, name) < 1:
            raise bad(name, "must be at least 1")
    if not 0 < p.wrds_port < 65536:
        raise bad("wrds_port", "must be a TCP port (1-65535)")
    if not p.wrds_fundamental_scale > 0:
        raise bad("wrds_fundamental_scale", "must be a positive multiplier (1e6: $ millions)")
    fields = p.wrds_fundamental_fields
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and k.isidentifier() and k == k.lower() and isinstance(v, str) and v
        for k, v in fields.items()
    ):
        raise bad(
            "wrds_fundamental_fields",
            "must map lowercase metric names to SQL expressions over comp.fundq, e.g. "
            '{"revenue": "saleq"}',
        )
    unknown = set(p.wrds_year_to_date) - set(fields)
    if unknown:
        raise bad("wrds_year_to_date", f"names {sorted(unknown)}, not in wrds_fundamental_fields")
