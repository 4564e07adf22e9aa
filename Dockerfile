# The project image: one image for the mlflow, ray-head, ray-worker and sweep services of
# docker-compose.yml. Pinned versions come from constraints.txt (the same pins CI tests).
#
#   docker build -t backprop-sweeps .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    MPLBACKEND=Agg

# An unprivileged user runs every service. /app is its working directory (sweep results);
# /mlartifacts is where the mlflow service keeps served artifacts (a named volume mounted there
# starts with this ownership).
RUN groupadd --gid 1000 sweeps \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/sweeps --shell /bin/bash sweeps \
    && mkdir -p /app /mlartifacts \
    && chown sweeps:sweeps /app /mlartifacts
WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the pins change.
# pip compiles every module it installs to bytecode (its default: keep it, and do not switch
# to an installer that does not). With PYTHONDONTWRITEBYTECODE set, and site-packages not
# writable by the services' user, no process writes a .pyc later: each one would compile
# MLflow, Ray and pandas from source on every start (a sweep ~1.7x slower here).
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir core sweeps \
    && touch core/__init__.py sweeps/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall -y backprop-sweeps \
    && rm -rf core sweeps build *.egg-info

# The project itself (no dependency changes: --no-deps keeps the layer above authoritative).
COPY core ./core
COPY sweeps ./sweeps
RUN pip install --no-deps -c constraints.txt . \
    && rm -rf build *.egg-info \
    && sweeps --help >/dev/null
COPY configs ./configs

USER sweeps
CMD ["sweeps", "--help"]
