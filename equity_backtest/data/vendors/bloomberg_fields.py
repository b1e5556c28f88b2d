"""The Bloomberg vendor's default field mnemonics (one home; parameters.py overrides them).

Kept apart from `bloomberg` so that the settings can name them without importing the vendor.
"""

# our market column -> Bloomberg field (daily, raw: not split or dividend adjusted)
MARKET_FIELDS = {
    "open": "PX_OPEN",
    "high": "PX_HIGH",
    "low": "PX_LOW",
    "close": "PX_LAST",
    "volume": "PX_VOLUME",
    "market_cap": "CUR_MKT_CAP",
}
# our fundamental metric -> Bloomberg field (asked at the fiscal periodicity, as reported)
FUNDAMENTAL_FIELDS = {
    "revenue": "SALES_REV_TURN",
    "ebit": "EBIT",
    "net_income": "NET_INCOME",
    "total_assets": "BS_TOT_ASSET",
    "total_equity": "TOTAL_EQUITY",
    "total_debt": "SHORT_AND_LONG_TERM_DEBT",
    "cash": "BS_CASH_NEAR_CASH_ITEM",
    "current_assets": "BS_CUR_ASSET_REPORT",
    "current_liabilities": "BS_CUR_LIAB",
    "net_fixed_assets": "BS_NET_FIX_ASSET",
    "shares_outstanding": "BS_SH_OUT",
    "operating_cash_flow": "CF_CASH_FROM_OPER",
    "capex": "CAPITAL_EXPEND",
    "gross_profit": "GROSS_PROFIT",
}
# our metadata column -> Bloomberg field (bdp)
METADATA_FIELDS = {
    "name": "NAME",
    "sector": "GICS_SECTOR_NAME",
    "isin": "ID_ISIN",
    "currency": "CRNCY",
    "listing_date": "EQY_INIT_PO_DT",
    "exchange": "ID_MIC_PRIM_EXCH",  # the primary exchange's MIC: the quality report's calendar
    "figi": "ID_BB_GLOBAL",  # the permanent id (FIGI): a ticker is reused, this is not
    "inactive_date": "INACTIVE_DATE",  # the day a dead security stopped trading
}
