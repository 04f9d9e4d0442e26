# jobskills HTTP API image (CPU). The CPU build of torch is installed first and pinned, so the project's
# dependencies never pull a multi-GB CUDA build. Off this machine, point pip at PyTorch's CPU wheel index:
#   docker build --build-arg PIP_TORCH_ARGS="--index-url <PyTorch CPU wheel index>" -t jobskills .
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG PIP_TORCH_ARGS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    JOBSKILLS_HOME=/data

WORKDIR /app
RUN pip install --no-cache-dir ${PIP_TORCH_ARGS} "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY jobskills ./jobskills
COPY indexer ./indexer
COPY retriever ./retriever
COPY trainer ./trainer
COPY synth ./synth
RUN pip install --no-cache-dir .

RUN useradd --create-home --uid 1000 jobskills && mkdir -p /data && chown jobskills /data
USER jobskills
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
CMD ["jobskills", "serve", "--host", "0.0.0.0", "--port", "8000"]
