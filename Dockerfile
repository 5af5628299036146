# safebrowse on Debian with Debian's Chromium, run as an unprivileged user.
# tini is PID 1: it forwards SIGTERM to safebrowse and reaps the Chromium processes
# that are re-parented to PID 1 when a browser exits (a bare Python PID 1 leaves them as zombies).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-liberation tini \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 safebrowse
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY mcp_server ./mcp_server
COPY control_api ./control_api
COPY tasks ./tasks
COPY safebrowse ./safebrowse
COPY cluster ./cluster
RUN pip install --no-cache-dir .

USER safebrowse
# The data dir (episode book, control token), made by its owner so that a volume mounted
# here starts with that owner: docker copies it from the image.
RUN mkdir -p /home/safebrowse/.local/state/safebrowse
ENV SAFEBROWSE_CHROMIUM=/usr/bin/chromium \
    SAFEBROWSE_HOST=0.0.0.0 \
    SAFEBROWSE_CONTROL_HOST=0.0.0.0
# 8000: the MCP door (publish it). 8001: the control API (bind it to a trusted network only).
EXPOSE 8000 8001
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os,sys,urllib.request; port = os.environ.get('SAFEBROWSE_CONTROL_PORT') or '8001'; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/v1/health', timeout=4).status == 200 else 1)"
ENTRYPOINT ["/usr/bin/tini", "--", "safebrowse"]
CMD ["serve"]
