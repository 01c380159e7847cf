# Image for the replay producer and the trainer (docker-compose.yml).
# CPU wheels of torch by default; the GPU trainer service builds with
# TORCH_INDEX pointing at a CUDA wheel index (see docker-compose.yml), and the code
# falls back to the CPU when no device is visible.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX}

COPY pyproject.toml README.md ./
COPY common ./common
COPY stream ./stream
COPY emulator ./emulator
COPY models ./models
COPY offline ./offline
COPY configs ./configs
RUN pip install ".[kafka]"

VOLUME ["/snapshots"]
CMD ["python", "-m", "emulator", "run", "--help"]
