"""Default Compustat items the WRDS vendor asks for (comp.fundq), kept apart from vendors.wrds so
config can name them without importing the vendor (which imports config)."""

from __future__ import annotations

# our metric -> an SQL expression over comp.fundq columns (Compustat: $ millions, millions of shares)
FUNDAMENTAL_FIELDS = {
    "revenue": "saleq",
    "ebit": "oiadpq",  # operating income after depreciation
    "net_income": "niq",
    "total_assets": "atq",
    "total_equity": "ceqq",
    "total_debt": "dlttq + coalesce(dlcq, 0)",  # long-term debt + debt in current liabilities
    "cash": "cheq",
    "current_assets": "actq",
    "current_liabilities": "lctq",
    "net_fixed_assets": "ppentq",
    "shares_outstanding": "cshoq",
    "operating_cash_flow": "oancfy",  # year to date in Compustat
    "capex": "capxy",  # year to date in Compustat
    "gross_profit": "saleq - cogsq",
}
# metrics whose Compustat items are fiscal year-to-date: the vendor logs each quarter's own part
YEAR_TO_DATE = ("operating_cash_flow", "capex")
