# Runs the whole pipeline (01 -> 04) on the simulated market with pinned package versions.
#   docker build -t equity_backtest .
#   docker run --rm -v "$PWD/results:/app/results" equity_backtest
# Install steps mirror the README's: a pip install of this package, here with constraints.txt pins.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY equity_backtest ./equity_backtest
RUN pip install --no-cache-dir -c constraints.txt .
COPY 01_query_vendor.py 02_build_datasets.py 03_trade.py 04_evaluate.py algorithm.py parameters.py ./
COPY strategies ./strategies
CMD ["sh", "-c", "python 01_query_vendor.py && python 02_build_datasets.py && python 03_trade.py && python 04_evaluate.py"]
