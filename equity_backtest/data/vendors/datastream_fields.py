"""The Datastream vendor's default datatypes (one home; parameters.py overrides them).

Kept apart from `datastream` so that the settings can name them without importing the vendor.
Units are as LSEG's datatype definitions give them; the vendor converts at the boundary
(docs/pipeline.md, "Datastream", has the table and what could not be confirmed).
"""

# daily time series (kind 1), per instrument; what each one becomes is in datastream_screens
MARKET_DATATYPES = {
    "unadjusted_close": "UP",  # the price as it was on the day (primary units: UK in pence)
    "close": "P",  # the close adjusted for later capital changes (not for ordinary dividends)
    "open": "PO",  # adjusted, like P
    "high": "PH",
    "low": "PL",
    "volume": "VO",  # thousands of shares
    "market_value": "MV",  # millions of currency units
    "shares": "NOSH",  # thousands of shares in issue (the market value where MV is missing)
    "return_index": "RI",  # gross dividends reinvested at the ex-date's close
    "dividend": "UDDE",  # dividend rate, unadjusted, stored on the ex-date (padded after it)
    "ex_date": "XDDE",  # the ex-date of the latest dividend (so padding is told from a payment)
}
# our fundamental metric -> Worldscope item (annual or interim, as ds_fundamental_frequency asks)
FUNDAMENTAL_DATATYPES = {
    "revenue": "WC01001",  # net sales or revenues
    "gross_profit": "WC01100",
    "ebit": "WC18191",
    "net_income": "WC01751",  # available to common
    "total_assets": "WC02999",
    "total_equity": "WC03501",  # common equity
    "total_debt": "WC03255",
    "cash": "WC02001",  # cash and short-term investments
    "current_assets": "WC02201",
    "current_liabilities": "WC03101",
    "net_fixed_assets": "WC02501",
    "shares_outstanding": "WC05301",
    "operating_cash_flow": "WC04860",
    "capex": "WC04601",
}
# our metadata column -> static datatype (kind 0)
METADATA_DATATYPES = {
    "name": "NAME",  # a dead company's reads "... DEAD - DELIST.dd/mm/yy"
    "sector": "INDM",  # the industry (ICB, level 4) as Datastream names it today
    "isin": "ISIN",
    "mnemonic": "MNEM",  # the ticker-like mnemonic (the key is the permanent DSCD)
    "currency": "PCUR",
    "listing_date": "BDATE",  # the first day Datastream has data for
    "exchange_mnemonic": "EXMNEM",  # Datastream's code of the listing's exchange
}
