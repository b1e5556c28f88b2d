"""What the WRDS vendor asks WRDS's PostgreSQL server, per CRSP format (CIZ, the current one,
and the legacy SIZ files), and of Compustat through the CCM link table: the SQL itself, kept apart
from the code that pages through it (wrds.py) so it can be read, and checked against WRDS's
published schemas, in one place (docs/pipeline.md lists the tables and columns with their units).
"""

# What is asked, per CRSP format. Every query names its columns as ours; %(...)s are parameters.
QUERIES = {
    "ciz": {
        "members": "SELECT permno, mbrstartdt AS spell_start, mbrenddt AS spell_end "
        "FROM crsp.dsp500list_v2 WHERE mbrstartdt <= %(end)s "
        "AND (mbrenddt IS NULL OR mbrenddt >= %(start)s)",
        "daily": "SELECT permno, dlycaldt AS date, dlyopen AS open, dlyhigh AS high, "
        "dlylow AS low, dlyprc AS close, dlyprcflg AS price_flag, dlyvol AS volume, "
        "dlycap AS cap_thousands, shrout AS shares_thousands FROM crsp.dsf_v2 "
        "WHERE permno = ANY(%(permnos)s) AND dlycaldt BETWEEN %(start)s AND %(end)s "
        "AND coalesce(dlydelflg, 'N') <> 'Y'",  # CIZ's extra row that carries a delisting
        "monthly": "SELECT permno, mthcaldt AS date, NULL::float AS open, NULL::float AS high, "
        "NULL::float AS low, mthprc AS close, mthprcflg AS price_flag, mthvol AS volume, "
        "mthcap AS cap_thousands, shrout AS shares_thousands FROM crsp.msf_v2 "
        "WHERE permno = ANY(%(permnos)s) AND mthcaldt BETWEEN %(start)s AND %(end)s",
        "names": "SELECT permno, secinfostartdt AS name_start, secinfoenddt AS name_end, "
        "ticker AS symbol, issuernm AS name, primaryexch AS exchange, siccd "
        "FROM crsp.stksecurityinfohist WHERE permno = ANY(%(permnos)s)",
        # every distribution: wrds_distributions applies each by its amounts or logs it unapplied
        "distributions": "SELECT permno, disexdt AS date, distype AS code, disdivamt AS cash, "
        "disfacpr AS factor FROM crsp.stkdistributions WHERE permno = ANY(%(permnos)s) "
        "AND disexdt BETWEEN %(start)s AND %(end)s",
        # delnextprc: the price found after delisting, where no delisting return was computed
        "delistings": "SELECT permno, delistingdt AS last_day, delret AS delisting_return, "
        "delnextprc AS delisting_price FROM crsp.stkdelists WHERE permno = ANY(%(permnos)s) "
        "AND delistingdt BETWEEN %(start)s AND %(end)s",
    },
    "legacy": {
        "members": "SELECT permno, start AS spell_start, ending AS spell_end "
        "FROM crsp.dsp500list WHERE start <= %(end)s "
        "AND (ending IS NULL OR ending >= %(start)s)",
        "daily": "SELECT permno, date, openprc AS open, askhi AS high, bidlo AS low, "
        "prc AS close, NULL AS price_flag, vol AS volume, NULL::float AS cap_thousands, "
        "shrout AS shares_thousands FROM crsp.dsf "
        "WHERE permno = ANY(%(permnos)s) AND date BETWEEN %(start)s AND %(end)s",
        # the legacy monthly file counts volume in hundreds of shares
        "monthly": "SELECT permno, date, NULL::float AS open, askhi AS high, bidlo AS low, "
        "prc AS close, NULL AS price_flag, vol * 100 AS volume, NULL::float AS cap_thousands, "
        "shrout AS shares_thousands FROM crsp.msf "
        "WHERE permno = ANY(%(permnos)s) AND date BETWEEN %(start)s AND %(end)s",
        "names": "SELECT permno, namedt AS name_start, nameenddt AS name_end, ticker AS symbol, "
        "comnam AS name, exchcd::text AS exchange, siccd FROM crsp.stocknames "
        "WHERE permno = ANY(%(permnos)s)",
        # every distribution, its code a DOUBLE PRECISION number (wrds_distributions reads its
        # first digit): each applied by its amounts or logged unapplied
        "distributions": "SELECT permno, exdt AS date, distcd AS code, divamt AS cash, "
        "facpr AS factor FROM crsp.dsedist WHERE permno = ANY(%(permnos)s) "
        "AND exdt BETWEEN %(start)s AND %(end)s",
        # dlstcd 100 is every security still active at the data's end: not a delisting
        "delistings": "SELECT permno, dlstdt AS last_day, dlret AS delisting_return, "
        "dlprc AS delisting_price FROM crsp.dsedelist WHERE permno = ANY(%(permnos)s) "
        "AND dlstdt BETWEEN %(start)s AND %(end)s AND dlstcd <> 100",
    },
}
# Compustat quarterly fundamentals of linked PERMNOs (CCM: link types LU/LC, primary P/C, the
# report within the link's dates); {metrics} are the wrds_fundamental_fields expressions
FUNDAMENTALS = (
    "SELECT l.lpermno AS permno, f.datadate AS period_end, f.rdq AS announcement_date, "
    "f.fyearq AS fiscal_year, f.fqtr AS fiscal_quarter, {metrics} FROM comp.fundq AS f "
    "JOIN crsp.ccmxpf_lnkhist AS l ON f.gvkey = l.gvkey "
    "WHERE l.lpermno = ANY(%(permnos)s) AND l.linktype IN ('LU', 'LC') "
    "AND l.linkprim IN ('P', 'C') AND f.datadate >= l.linkdt "
    "AND f.datadate <= coalesce(l.linkenddt, '9999-12-31') "
    "AND f.indfmt = 'INDL' AND f.datafmt = 'STD' AND f.popsrc = 'D' AND f.consol = 'C' "
    "AND f.curcdq = 'USD' "  # a firm reporting in another currency: its figures are not dollars
    "AND f.datadate BETWEEN %(start)s AND %(end)s"
)
# Compustat Snapshot's point-in-time quarterly history (WRDS library comp_snapshot, also
# reachable as compsnap): one row per version of a quarter, valid from pitdate1 to pitdate2.
# A version is public from the later of its report date and the day the snapshot first held it;
# preliminary and final versions (updq 2 and 3) alike, each from its own date.
FUNDAMENTALS_PIT = FUNDAMENTALS.replace(
    "f.rdq AS announcement_date", "greatest(f.rdq, f.pitdate1) AS announcement_date"
).replace("FROM comp.fundq AS f", "FROM comp_snapshot.wrds_csq_pit AS f")
PIT_TABLE = "comp_snapshot.wrds_csq_pit"
GICS = (
    "SELECT DISTINCT ON (l.lpermno) l.lpermno AS permno, c.gsector FROM comp.company AS c "
    "JOIN crsp.ccmxpf_lnkhist AS l ON c.gvkey = l.gvkey WHERE l.lpermno = ANY(%(permnos)s) "
    "AND l.linktype IN ('LU', 'LC') AND l.linkprim IN ('P', 'C') "
    "ORDER BY l.lpermno, l.linkdt DESC"
)

# Compustat's GICS history (from 1999 on): each sector a company had and from when; read where
# the account has it, else comp.company's current sector stands for the whole history
GICS_HISTORY_TABLE = "comp.co_hgic"
GICS_HISTORY = (
    "SELECT DISTINCT l.lpermno AS permno, h.gsector, h.indfrom FROM comp.co_hgic AS h "
    "JOIN crsp.ccmxpf_lnkhist AS l ON h.gvkey = l.gvkey WHERE l.lpermno = ANY(%(permnos)s) "
    "AND l.linktype IN ('LU', 'LC') AND l.linkprim IN ('P', 'C') ORDER BY 1, 3"
)

# what fundamentals and GICS sectors need beyond CRSP: the CCM link table and Compustat, which
# are subscriptions of their own
MERGED_TABLES = ("crsp.ccmxpf_lnkhist", "comp.fundq", "comp.company")
