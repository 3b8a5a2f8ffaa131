#!/usr/bin/env python3
"""Measures the Lambda binaries against a stand-in Lambda Runtime API on loopback and moto.

1. Each binary: size, and start-up to ready (process start to its first request to the
   Lambda Runtime API), with moto holding the connection secret. moto runs through
   scripts/moto-serial.py (one request at a time: its DynamoDB transactions are not
   thread-safe).
2. `worker_batch`: the sync-worker's memory for one SQS batch of 10 messages, on the
   sandbox's sample data. Per run (3 runs, median reported), from fresh state:
   - moto is reset (`POST /moto-api/reset`); the connection secret, the DynamoDB tables
     (as `DynamoStore::create_tables` makes them, docs/dynamodb.md) and the work queue are
     created again;
   - `prmsync sandbox serve` starts the Salesforce and PRM simulators with the sample data
     (a fresh state dir each run) and the secret points at them with the sandbox's
     credentials;
   - `full-sync` gets one invocation `{"integration":"all","mode":"full"}` and queues the
     organizations' chunks in SQS; they are received with boto3. The sandbox is small, so
     there are fewer than 10 chunks: the batch repeats them to 10 messages, the repeats
     standing for redeliveries (new messageId, ApproximateReceiveCount 2+). The worker
     syncs four at a time, so a chunk and its repeat can meet: "synced by another worker
     at the same time" warnings are expected;
   - the people of an `all` run are planned once its organizations run closes (the closing
     worker invokes full-sync with `{"integration":"people","mode":"full"}`; the script
     does, after purging the queue), and their chunks make a second batch the same way;
   - a fresh `sync-worker` gets each SQS event as its first invocation. VmHWM (peak RSS) is
     read from /proc/<pid>/status at ready (its first GET .../invocation/next, the idle
     baseline) and when its response is POSTed, before the process is stopped;
     `invocation_ms` is the time from handing out the event to the response, mostly moto's
     (Python) DynamoDB, so `worker_cpu_ms` (user + system CPU of the worker during the
     invocation) is given too; `per_run` has the CPU time of moto and the sandbox as well.
   Memory figures are MiB (1024 kB of /proc), as Lambda's "Max Memory Used" and
   docs/benchmarks.md give them.

BENCH_WORKER_RUNS=<n> changes the number of worker runs; BENCH_KEEP_LOGS=1 keeps the logs of
moto, the sandbox and every function process (their folder is printed on stderr).

Run after `cargo build --release -p full-sync -p sync-worker -p deal-import -p prm-webhook`
and `cargo build --release --bin prmsync` (native builds; `cargo lambda build --release
--arm64` makes the deployable ones). Prints one JSON object on stdout; progress, worker
warnings and errors go to stderr. Exits non-zero naming the step that failed."""
import hashlib, http.server, json, os, queue, re, shutil, signal, socket, statistics, subprocess, sys
import tempfile, threading, time, urllib.request, uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, "target", "release")
FUNCTIONS = ["full-sync", "sync-worker", "deal-import", "prm-webhook"]
RUNS = 5
BATCH = 10          # messages in the worker's SQS batch (the template's BatchSize)
WORKER_RUNS = int(os.environ.get("BENCH_WORKER_RUNS", "3"))
KEEP_LOGS = bool(os.environ.get("BENCH_KEEP_LOGS"))  # keep the processes' logs (moto.log, <function>-*.out/.err)
NEXT = "/2018-06-01/runtime/invocation/next"
REGION, ACCOUNT = "us-east-1", "123456789012"

children = []  # every process started here, stopped on exit


class StepError(Exception):
    def __init__(self, step, message):
        super().__init__(f"{step}: {message}")
        self.step = step


def log(msg):
    print(f"bench-lambda: {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_http(url, deadline, step):
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1); return
        except Exception:
            time.sleep(0.05)
    raise StepError(step, f"{url} did not answer")


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    children.append(p)
    return p


def stop(p, sig=signal.SIGKILL, grace=5):
    """Stops a child started here (by its own pid) and reaps it."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()
        except ProcessLookupError:
            pass
    if p in children:
        children.remove(p)


def proc_status(pid):
    """VmHWM and VmRSS of a live process, in kB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {k: int(fields[k].split()[0]) for k in ("VmHWM", "VmRSS")}
    except (OSError, KeyError, ValueError):
        return None


def cpu_ms(pid):
    """User + system CPU time of a live process, in ms (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def mib(kb):
    return round(kb / 1024, 1)


def tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-n:].strip()
    except OSError:
        return ""


class QuietServer(http.server.ThreadingHTTPServer):
    """A stopped function drops its connections: not worth a traceback."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


class StandInRuntime:
    """The Lambda Runtime API on loopback for one process: hands out `events` (request id,
    JSON bytes) one per GET .../invocation/next, long-polls when none is left, and records
    what the process POSTs back with its VmHWM/VmRSS at that moment."""

    def __init__(self, function, events, timeout_ms, watch=None):
        self.watch = dict(watch or {})  # name -> pid whose CPU time is sampled per invocation
        self.cpu_at_send = {}
        self.events = queue.Queue()
        for e in events:
            self.events.put(e)
        self.pid, self.pid_known = None, threading.Event()
        self.ready, self.ready_at, self.ready_status = threading.Event(), None, None
        self.sent, self.results = {}, {}
        self.answered = threading.Condition()
        self.init_error = None
        self.stopping = threading.Event()
        rt = self
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"

        class Handler(http.server.BaseHTTPRequestHandler):
            def body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline(); return out
                        out += self.rfile.read(size); self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def reply(self, code, payload=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload); self.wfile.flush()

            def do_GET(self):
                if self.path != NEXT:
                    return self.reply(404, b'{"errorMessage":"unknown path"}')
                rt.pid_known.wait(5)
                if not rt.ready.is_set():
                    rt.ready_at = time.perf_counter()
                    rt.ready_status = proc_status(rt.pid)
                    rt.ready.set()
                while True:
                    if rt.stopping.is_set():
                        return
                    try:
                        req_id, payload = rt.events.get(timeout=0.1); break
                    except queue.Empty:
                        continue
                deadline = int(time.time() * 1000) + timeout_ms
                rt.cpu_at_send[req_id] = rt.cpu()
                rt.sent[req_id] = time.perf_counter()
                self.reply(200, payload, [
                    ("Lambda-Runtime-Aws-Request-Id", req_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                    ("Lambda-Runtime-Invoked-Function-Arn", arn),
                    ("Lambda-Runtime-Trace-Id", f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0")])

            def do_POST(self):
                at = time.perf_counter()
                m = re.fullmatch(r"/2018-06-01/runtime/(?:invocation/([^/]+)/(response|error)|init/error)", self.path)
                body = self.body()
                status = proc_status(rt.pid)
                cpu = rt.cpu()
                if not m:
                    return self.reply(404, b'{"errorMessage":"unknown path"}')
                # Acknowledge first: once the result is in, the process may be stopped.
                try:
                    self.reply(202, b'{"status":"OK"}')
                except OSError:
                    pass
                with rt.answered:
                    if m.group(1) is None:
                        rt.init_error = body.decode(errors="replace")
                    else:
                        before = rt.cpu_at_send.get(m.group(1), {})
                        rt.results[m.group(1)] = {"kind": m.group(2), "body": body.decode(errors="replace"),
                                                  "at": at, "status": status,
                                                  "cpu_ms": {k: round(v - before[k]) for k, v in cpu.items()
                                                             if v is not None and before.get(k) is not None}}
                    rt.answered.notify_all()

            def log_message(self, *a):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def cpu(self):
        return {name: cpu_ms(pid) for name, pid in dict(self.watch, function=self.pid).items()}

    def close(self):
        self.stopping.set()
        self.server.shutdown(); self.server.server_close()


def invoke(function, env, payloads, timeout_s, logdir, watch=None):
    """Starts `function` under a stand-in Runtime API, hands it `payloads` (one invocation
    each), waits for every response, stops it. Returns (runtime, stdout log path)."""
    step = f"invoking {function}"
    events = [(str(uuid.uuid4()), json.dumps(p).encode()) for p in payloads]
    rt = StandInRuntime(function, events, timeout_s * 1000, watch)
    out_path = os.path.join(logdir, f"{function}-{uuid.uuid4().hex[:6]}.out")
    err_path = out_path[:-4] + ".err"
    proc = None
    try:
        run_env = dict(env, AWS_LAMBDA_RUNTIME_API=rt.address, AWS_LAMBDA_FUNCTION_NAME=function,
                       AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                       AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{function}")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = spawn([os.path.join(BIN, function)], env=run_env, stdout=out, stderr=err)
        rt.pid = proc.pid; rt.pid_known.set()
        deadline = time.time() + timeout_s + 30
        with rt.answered:
            while len(rt.results) < len(events) and rt.init_error is None:
                if proc.poll() is not None:
                    raise StepError(step, f"the process exited (code {proc.returncode}) after {len(rt.results)} of "
                                          f"{len(events)} responses; its output: {tail(err_path) or tail(out_path)}")
                if time.time() > deadline:
                    raise StepError(step, f"no response within {timeout_s + 30} s; its output: {tail(out_path)} {tail(err_path)}")
                rt.answered.wait(0.05)
        if rt.init_error is not None:
            raise StepError(step, f"initialisation failed (POST /runtime/init/error): {rt.init_error}")
        for req_id, _ in events:
            r = rt.results[req_id]
            if r["kind"] == "error":
                raise StepError(step, f"the invocation failed (POST .../error): {r['body']}; its output: {tail(out_path)}")
            r["ms"] = (r["at"] - rt.sent[req_id]) * 1000
        return rt, out_path
    finally:
        if proc is not None:
            stop(proc)
        rt.close()


def bench_startup(env):
    """Size and start-up to ready of every binary (the Runtime API answers 500 to stop it)."""
    results = {}
    for f in FUNCTIONS:
        path = os.path.join(BIN, f)
        if not os.path.exists(path):
            raise StepError("start-up", f"{path} is missing: cargo build --release -p {f}")
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
            server = QuietServer(("127.0.0.1", 0), Runtime)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            run_env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
                           AWS_LAMBDA_FUNCTION_NAME=f, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
                           AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench")
            start = time.perf_counter()
            proc = spawn([path], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ok = first.wait(10)
            elapsed = (time.perf_counter() - start) * 1000
            stop(proc); server.shutdown(); server.server_close()
            if not ok:
                raise StepError("start-up", f"{f} never asked the Runtime API for work: {proc.stderr.read().decode()[:500]}")
            proc.stderr.close()
            times.append(elapsed)
        times.sort()
        results[f] = {"size_mb": size_mb, "ready_ms_median": round(times[len(times) // 2], 1), "ready_ms_min": round(times[0], 1)}
    return results


class Aws:
    def __init__(self, endpoint):
        import boto3
        self.endpoint = endpoint
        kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        self.sm, self.ddb, self.sqs = (boto3.client(s, **kw) for s in ("secretsmanager", "dynamodb", "sqs"))

    def reset(self):
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except Exception as e:
            raise StepError("resetting moto", str(e))

    def secret(self, values):
        return self.sm.create_secret(Name=f"prmsync-connection-{uuid.uuid4().hex[:6]}",
                                     SecretString=json.dumps(values))["ARN"]

    def create_tables(self, state, log_table):
        """As DynamoStore::create_tables: pk/sk string keys, GSIs projecting ALL, on demand,
        TTL on the log's expires_at."""
        s = lambda n: {"AttributeName": n, "AttributeType": "S"}
        key = lambda h, r=None: [{"AttributeName": h, "KeyType": "HASH"}] + ([{"AttributeName": r, "KeyType": "RANGE"}] if r else [])
        gsi = lambda name, h, r=None: {"IndexName": name, "KeySchema": key(h, r), "Projection": {"ProjectionType": "ALL"}}
        self.ddb.create_table(TableName=state, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[s("pk"), s("sk"), s("crm_key"), s("retry_key")],
                              KeySchema=key("pk", "sk"),
                              GlobalSecondaryIndexes=[gsi("by_crm_key", "crm_key"), gsi("by_retry_key", "retry_key")])
        self.ddb.create_table(TableName=log_table, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[s("pk"), s("sk"), s("open")],
                              KeySchema=key("pk", "sk"), GlobalSecondaryIndexes=[gsi("by_open", "open", "sk")])
        for t in (state, log_table):
            self.ddb.get_waiter("table_exists").wait(TableName=t, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        self.ddb.update_time_to_live(TableName=log_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})

    def receive_all(self, url, expected):
        """Every message on the queue (until `expected` are in, or it stays empty)."""
        messages, empty = [], 0
        while len(messages) < expected and empty < 3:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            empty = 0 if got else empty + 1
            messages += got
        return messages

    def open_log(self, table):
        """Codes of the Integration Log's unacknowledged warnings and errors, counted, and
        the messages of its chunk_retried entries (why a batch item failed)."""
        codes, retried, kw = {}, [], {}
        while True:
            page = self.ddb.scan(TableName=table, **kw)
            for item in page.get("Items", []):
                if "open" in item:
                    c = item.get("code", {}).get("S", "?")
                    codes[c] = codes.get(c, 0) + 1
                if item.get("code", {}).get("S") == "chunk_retried":
                    retried.append(item.get("message", {}).get("S", "?"))
            if "LastEvaluatedKey" not in page:
                return codes, retried
            kw = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def start_sandbox(state_dir, logdir):
    """`prmsync sandbox serve` on free ports; returns (process, Salesforce url, client id,
    client secret, PRM url, PRM token) as it prints them."""
    step = "starting the sandbox (prmsync sandbox serve)"
    cli = os.path.join(BIN, "prmsync")
    if not os.path.exists(cli):
        raise StepError(step, f"{cli} is missing: cargo build --release --bin prmsync")
    err_path = os.path.join(logdir, f"sandbox-{uuid.uuid4().hex[:6]}.err")
    with open(err_path, "wb") as err:
        p = spawn([cli, "sandbox", "serve", "--state-dir", state_dir], stdout=subprocess.PIPE, stderr=err,
                  stdin=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.decode(errors="replace")) for l in p.stdout], daemon=True).start()
    sf = prm = None
    deadline = time.time() + 30
    while (sf is None or prm is None) and time.time() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if p.poll() is not None:
                raise StepError(step, f"it exited with code {p.returncode}: {tail(err_path)}")
            continue
        sf = sf or re.search(r"Salesforce simulator:\s+(http://\S+)\s+\(client id (\S+), client secret ([^)\s]+)\)", line)
        prm = prm or re.search(r"PRM simulator:\s+(http://\S+)\s+\(API token ([^)\s]+)\)", line)
    if sf is None or prm is None:
        raise StepError(step, f"it did not print both simulators' addresses within 30 s: {tail(err_path)}")
    return p, sf.group(1), sf.group(2), sf.group(3), prm.group(1), prm.group(2)


def worker_batch_run(n, aws, base_env, logdir, moto_pid):
    """One measurement from fresh state; returns a dict of its figures."""
    aws.reset()
    state_dir = tempfile.mkdtemp(prefix="prmsync-bench-sandbox-", dir=logdir)
    sandbox = None
    try:
        sandbox, sf_url, client_id, client_secret, prm_url, prm_token = start_sandbox(state_dir, logdir)
        try:
            arn = aws.secret({"salesforce_login_url": sf_url, "salesforce_client_id": client_id,
                              "salesforce_client_secret": client_secret, "prm_api_url": prm_url,
                              "prm_api_token": prm_token, "prm_webhook_secret": "bench-webhook-secret"})
            aws.create_tables(base_env["PRMSYNC_STATE_TABLE"], base_env["PRMSYNC_LOG_TABLE"])
            queue_url = aws.sqs.create_queue(QueueName="prmsync-work", Attributes={"VisibilityTimeout": "1800"})["QueueUrl"]
        except StepError:
            raise
        except Exception as e:
            raise StepError("creating the secret, tables and queue on moto", repr(e))
        env = dict(base_env, PRMSYNC_SECRET_ARN=arn, PRMSYNC_QUEUE_URL=queue_url, RUST_LOG="info")

        # Plan: full-sync queues the organizations of an `all` run; the worker that closes
        # that run asks full-sync to plan its people (PRMSYNC_FULL_SYNC_FUNCTION), which the
        # script does here. Each integration's chunks make a batch of their own, measured
        # with a fresh worker; the queue is purged in between (redeliveries the first batch
        # sent again are not part of the second).
        run = {}
        for integration, payload in (("organizations", {"integration": "all", "mode": "full"}),
                                     ("people", {"integration": "people", "mode": "full"})):
            run[integration] = worker_batch(n, integration, payload, aws, env, base_env, logdir, moto_pid, sandbox, queue_url)
            aws.sqs.purge_queue(QueueUrl=queue_url)
        return run
    finally:
        if sandbox is not None:
            stop(sandbox, signal.SIGINT)  # it saves its data (in the temporary state dir) and exits
            sandbox.stdout.close()
        shutil.rmtree(state_dir, ignore_errors=True)


def worker_batch(n, integration, payload, aws, env, base_env, logdir, moto_pid, sandbox, queue_url):
    """Plans with `payload`, receives the chunks of `integration` and measures a fresh
    sync-worker on a batch of them; returns a dict of its figures."""
    rt, _ = invoke("full-sync", env, [payload], 900, logdir)
    plan = json.loads(next(iter(rt.results.values()))["body"])
    integrations = plan.get("integrations", {})
    queued = (integrations.get(integration) or {}).get("chunks") or 0
    summary = {k: f"{v.get('status')}: {v.get('chunks')} chunks, {v.get('records')} records" for k, v in integrations.items()}
    if queued == 0:
        raise StepError(f"planning {integration} (full-sync {json.dumps(payload)})", f"no chunks were queued: {plan}")
    messages = aws.receive_all(queue_url, queued)
    if not messages:
        raise StepError("receiving the chunks from SQS", f"the queue is empty although full-sync reported {summary}")
    for m in messages:
        try:
            chunk = json.loads(m["Body"])
            assert isinstance(chunk, dict) and "run_id" in chunk and "integration" in chunk
        except Exception:
            raise StepError("receiving the chunks from SQS", f"a message is not a Chunk: {m['Body'][:300]}")

    # The batch: the chunks, repeated up to BATCH messages.
    qarn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:prmsync-work"
    records, distinct_records = [], 0
    for i in range(BATCH):
        m = messages[i % len(messages)]
        repeat = i // len(messages)
        attrs = dict(m.get("Attributes", {}))
        attrs["ApproximateReceiveCount"] = str(int(attrs.get("ApproximateReceiveCount", "1")) + repeat)
        records.append({
            "messageId": m["MessageId"] if repeat == 0 else str(uuid.uuid4()),
            "receiptHandle": m["ReceiptHandle"] if repeat == 0 else f"bench-redelivery-{uuid.uuid4().hex}",
            "body": m["Body"], "attributes": attrs, "messageAttributes": {},
            "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
            "eventSource": "aws:sqs", "eventSourceARN": qarn, "awsRegion": REGION})
    size = lambda body: (lambda c: len(c.get("crm_ids", [])) + len(c.get("prm_ids", [])))(json.loads(body))
    distinct_records = sum(size(m["Body"]) for m in messages)
    total_records = sum(size(r["body"]) for r in records)

    # Measure: a fresh worker, the batch as its first invocation.
    rt, out_path = invoke("sync-worker", env, [{"Records": records}], 300, logdir,
                          watch={"moto": moto_pid, "sandbox": sandbox.pid})
    result = next(iter(rt.results.values()))
    if rt.ready_status is None or result["status"] is None:
        raise StepError("measuring sync-worker", "could not read /proc/<pid>/status")
    try:
        failures = json.loads(result["body"]).get("batchItemFailures") or []
    except ValueError:
        raise StepError("measuring sync-worker", f"the response is not JSON: {result['body'][:300]}")

    # What the worker said and left behind.
    levels, writes, record_errors, synced, noted, by_code = {}, 0, 0, 0, [], {}
    with open(out_path, errors="replace") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                noted.append(line.strip()); continue
            lvl = e.get("level", "?")
            levels[lvl] = levels.get(lvl, 0) + 1
            if e.get("code") == "chunk_worked":
                synced += 1; writes += int(e.get("writes", 0)); record_errors += int(e.get("errors", 0))
            if lvl in ("WARN", "ERROR"):
                key = f"{lvl} {e.get('code', '?')}"
                count, first = by_code.get(key, (0, e.get("message", "")))
                by_code[key] = (count + 1, first)
    err_text = tail(out_path[:-4] + ".err")
    if err_text:
        noted.append(err_text)
    for key, (count, first) in sorted(by_code.items()):
        log(f"run {n}, {integration}: sync-worker logged {count} x {key}, e.g. {first[:240]}")
    for line in noted[:10]:
        log(f"run {n}, {integration}: sync-worker printed (not a JSON log line): {line[:400]}")
    requeued = int(aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
                   ["Attributes"]["ApproximateNumberOfMessages"])
    open_codes, retried = aws.open_log(base_env["PRMSYNC_LOG_TABLE"])
    for reason in retried:
        log(f"run {n}, {integration}: chunk_retried: {reason[:600]}")
    run = {"chunks_queued": queued, "chunks_received": len(messages), "distinct_records": distinct_records,
           "records": total_records, "plan": summary,
           "ready_rss_mb": mib(rt.ready_status["VmHWM"]),
           "peak_rss_mb": mib(result["status"]["VmHWM"]), "rss_at_response_mb": mib(result["status"]["VmRSS"]),
           "invocation_ms": round(result["ms"], 1), "cpu_ms_during_invocation": result["cpu_ms"],
           "failures": len(failures), "failure_reasons": [r[:300] for r in retried],
           "chunks_synced": synced, "writes": writes, "record_errors": record_errors,
           "log_lines": levels, "requeued": requeued, "open_log_codes": open_codes}
    log(f"run {n}, {integration}: {json.dumps(run)}")
    return run


def bench_worker_batch(aws, base_env, logdir, moto_pid):
    runs = [worker_batch_run(i + 1, aws, base_env, logdir, moto_pid) for i in range(WORKER_RUNS)]
    out = {}
    for integration in ("organizations", "people"):
        batches = [r[integration] for r in runs]
        med = lambda k: round(statistics.median(b[k] for b in batches), 1)
        first = batches[0]
        note = None
        if first["chunks_received"] < BATCH:
            note = (f"full-sync queued {first['chunks_received']} chunks ({first['distinct_records']} records) of {integration} on the sandbox data; "
                    f"the batch repeats them to {BATCH} messages as redeliveries (new messageId, ApproximateReceiveCount > 1)")
        out[integration] = {
            "messages": BATCH, "records": first["records"], "distinct_chunks": first["chunks_received"],
            "distinct_records": first["distinct_records"], "runs": len(batches),
            "peak_rss_mb": med("peak_rss_mb"), "ready_rss_mb": med("ready_rss_mb"),
            "invocation_ms": med("invocation_ms"),
            "worker_cpu_ms": round(statistics.median(b["cpu_ms_during_invocation"].get("function", 0) for b in batches)),
            "failures": sum(b["failures"] for b in batches),
            "unit": "MiB, median of runs; failures = batchItemFailures over all runs", "note": note,
            "per_run": batches}
    # The larger of the two batches' peaks: what a worker's memory size must hold.
    out["peak_rss_mb"] = max(out["organizations"]["peak_rss_mb"], out["people"]["peak_rss_mb"])
    return out


def main():
    logdir = tempfile.mkdtemp(prefix="prmsync-bench-")
    keep_logs = KEEP_LOGS
    moto_port, moto = free_port(), None
    moto_log = os.path.join(logdir, "moto.log")
    try:
        with open(moto_log, "wb") as ml:
            moto = spawn([sys.executable, os.path.join(ROOT, "scripts", "moto-serial.py"), "-H", "127.0.0.1", "-p", str(moto_port)],
                  stdout=ml, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{moto_port}"
        wait_http(f"{endpoint}/moto-api/", time.time() + 30, "starting moto")
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION, PRMSYNC_STATE_TABLE="state",
                   PRMSYNC_LOG_TABLE="log", PRMSYNC_QUEUE_URL=f"{endpoint}/{ACCOUNT}/work",
                   RUST_LOG="warn")
        env.pop("PRMSYNC_MAPPING_FILE", None)
        aws = Aws(endpoint)
        env["PRMSYNC_SECRET_ARN"] = aws.secret({
            "salesforce_login_url": "http://127.0.0.1:9", "salesforce_client_id": "id", "salesforce_client_secret": "s",
            "prm_api_url": "http://127.0.0.1:9", "prm_api_token": "t", "prm_webhook_secret": "w"})

        log("start-up of each binary")
        results = bench_startup(env)
        log(f"sync-worker with a {BATCH}-message batch, {WORKER_RUNS} runs")
        results["worker_batch"] = bench_worker_batch(aws, env, logdir, moto.pid)
        print(json.dumps(results))
    except StepError as e:
        keep_logs = True
        sys.exit(f"bench-lambda failed while {e}\n(logs kept in {logdir})")
    except BaseException:
        keep_logs = True
        log(f"interrupted or crashed; logs kept in {logdir}")
        raise
    finally:
        for p in list(children):
            stop(p, signal.SIGTERM if p is moto else signal.SIGKILL)
        if not keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
        elif KEEP_LOGS:
            log(f"logs kept in {logdir}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench-lambda: terminated"))
    main()
