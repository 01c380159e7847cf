# Image for the replay producer and the trainer (docker-compose.yml).
# CPU wheels of torch by default; the GPU trainer service reserves a device and
# torch falls back to the CPU when none is visible.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY stream ./stream
COPY emulator ./emulator
COPY models ./models
COPY offline ./offline
COPY configs ./configs
RUN pip install ".[kafka]"

VOLUME ["/snapshots"]
CMD ["python", "-m", "emulator", "run", "--help"]
