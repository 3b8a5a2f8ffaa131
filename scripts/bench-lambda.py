#!/usr/bin/env python3
"""Measures each Lambda binary: size, and start-up to ready (process start to its first
request to the Lambda Runtime API), against a stand-in Runtime API on loopback and moto for
the connection secret. Run after `cargo build --release -p full-sync -p sync-worker
-p deal-import -p prm-webhook` (a native build; `cargo lambda build --release --arm64`
makes the deployable ones). Prints one JSON object."""
import http.server, json, os, socket, subprocess, sys, threading, time, urllib.request

ROOT = os.path.join(os.path.dirname(__file__), "..")
BIN = os.path.join(ROOT, "target", "release")
FUNCTIONS = ["full-sync", "sync-worker", "deal-import", "prm-webhook"]
RUNS = 5

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_http(url, deadline):
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1); return
        except Exception:
            time.sleep(0.05)
    sys.exit(f"{url} did not answer")

moto_port = free_port()
moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", time.time() + 30)
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", PRMSYNC_STATE_TABLE="state",
               PRMSYNC_LOG_TABLE="log", PRMSYNC_QUEUE_URL=f"http://127.0.0.1:{moto_port}/123456789012/work",
               RUST_LOG="warn")
    import boto3
    sm = boto3.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    arn = sm.create_secret(Name="prmsync-connection", SecretString=json.dumps({
        "salesforce_login_url": "http://127.0.0.1:9", "salesforce_client_id": "id", "salesforce_client_secret": "s",
        "prm_api_url": "http://127.0.0.1:9", "prm_api_token": "t", "prm_webhook_secret": "w"}))["ARN"]
    env["PRMSYNC_SECRET_ARN"] = arn

    results = {}
    for f in FUNCTIONS:
        path = os.path.join(BIN, f)
        size_mb = round(os.path.getsize(path) / 1e6, 1)
        times = []
        for _ in range(RUNS):
            first = threading.Event()
            class Runtime(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    first.set()
                    time.sleep(0.2)
                    self.send_response(500); self.end_headers()
                def log_message(self, *a): pass
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            run_env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
                           AWS_LAMBDA_FUNCTION_NAME=f, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
                           AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench")
            start = time.perf_counter()
            proc = subprocess.Popen([path], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ok = first.wait(10)
            elapsed = (time.perf_counter() - start) * 1000
            proc.kill(); proc.wait(); server.shutdown()
            if not ok:
                sys.exit(f"{f} never asked the Runtime API for work: {proc.stderr.read().decode()[:500]}")
            times.append(elapsed)
        times.sort()
        results[f] = {"size_mb": size_mb, "ready_ms_median": round(times[len(times) // 2], 1), "ready_ms_min": round(times[0], 1)}
    print(json.dumps(results))
finally:
    moto.terminate()
