"""One lab test, in a process of its own: what `minivm grade` starts per test.

    python -m minivm.grade_runner RESULT_FD      (the job, as JSON, on stdin)
    python -m minivm.grade_runner --zygote FD    (a fork server: see zygote())

The job names a test file of the lab, a test function, the submission's
private copy and the limits.  This process runs the lab's own test code,
which is trusted; the student's code never runs here: the test reaches it
through minivm.labkit, in a further process (minivm/sandbox.py), and gets
back only plain data, which the test checks here.

The verdict goes back to the grader as one JSON line on RESULT_FD, a pipe
only this process holds (the student's process does not inherit it), with
the grader's per-run token: {"token", "test", "status", "fraction", "message",
"submission_output"}.  Made non-dumpable first, so that another process of
the same (non-root) user cannot read this one's memory or open its pipes
through /proc.
"""
import json
import os
import sys
import time

MAX_MESSAGE = 3000


def _harden():
    import resource
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_DUMPABLE = 4
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limit_memory(megabytes):
    import resource
    if megabytes:
        limit = int(megabytes) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _import_test_module(path):
    import importlib.util
    name = "labtest_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _fixtures(function, job):
    """The few pytest fixtures lab tests may ask for."""
    values = {}
    code = function.__code__
    for name in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
        if name == "tmp_path":
            import pathlib
            folder = os.path.join(job["scratch"], f"tmp-{len(values)}")
            os.makedirs(folder, exist_ok=True)
            values[name] = pathlib.Path(folder)
        else:
            raise TypeError(f"lab test {function.__name__} asks for fixture {name!r}; "
                            f"the grader provides only tmp_path")
    return values


def _where(error, test_file):
    """The line of the test that failed, as `file:line: source`."""
    import traceback
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(frame.filename) == os.path.abspath(test_file)]
    if not frames:
        return ""
    frame = frames[-1]
    return f"{os.path.basename(frame.filename)}:{frame.lineno}: {(frame.line or '').strip()}"


def describe_failure(error, test_file):
    """(status, message) for an exception out of a test."""
    from minivm import labkit
    if isinstance(error, labkit.SubmissionError):
        return "failed", str(error)
    if isinstance(error, AssertionError):
        text = str(error)
        where = _where(error, test_file)
        if not text:
            return "failed", f"check failed: {where}" if where else "check failed"
        return "failed", text
    import traceback
    where = _where(error, test_file)
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return "error", f"the test itself failed with {text}" + (f"\n  at {where}" if where else "")


def run(job):
    """Run one test; the result record (without the token)."""
    from minivm import labkit
    started = time.monotonic()
    status, fraction, message = "passed", 1.0, ""
    try:
        for folder in reversed(job.get("path", [])):
            sys.path.insert(0, folder)
        module = _import_test_module(job["test_file"])
        function = getattr(module, job["test"], None)
        if function is None:
            raise LookupError(f"no test {job['test']} in {os.path.basename(job['test_file'])}")
        function(**_fixtures(function, job))
    except labkit.Partial as partial:
        status, fraction, message = ("passed" if partial.fraction >= 1 else "partial",
                                     partial.fraction, str(partial))
    except BaseException as error:      # noqa: B902 - every way a test can end is a verdict
        if isinstance(error, KeyboardInterrupt):
            raise
        status, message = describe_failure(error, job["test_file"])
        fraction = 0.0
    output = b""
    for filename, printed, total in labkit.outputs():
        if printed:
            more = f" (first {len(printed)} of {total} bytes)" if total > len(printed) else ""
            output += f"--- {filename} printed{more}:\n".encode() + printed + b"\n"
    labkit.close_all()
    return {"test": job["test"], "status": status, "fraction": fraction,
            "message": message[:MAX_MESSAGE],
            "submission_output": output[:4096].decode(errors="replace"),
            "seconds": round(time.monotonic() - started, 3)}


def run_job(job, result_fd):
    """The whole life of a test process: limits, the test, the verdict; never returns."""
    _harden()
    _limit_memory(job.get("memory_mb"))
    # The token waits in a pipe, not in this process's objects: the student's
    # process may be a fork of this one, and must not find it (nor the result
    # pipe, which it closes).
    token_r, token_w = os.pipe()
    os.write(token_w, job.pop("token").encode())
    os.close(token_w)
    os.environ["MINIVM_LAB_FORK"] = "1"
    os.environ["MINIVM_SUBMISSION"] = job["submission"]
    os.environ["MINIVM_LAB_DEADLINE"] = str(job["deadline"])
    os.environ["MINIVM_LAB_MAX_INSNS"] = str(job["max_insns"])
    os.environ["MINIVM_LAB_MEMORY_MB"] = str(job["submission_memory_mb"])
    from minivm import labkit
    labkit.reload_settings()
    record = run(job)
    record["token"] = os.read(token_r, 256).decode()
    data = (json.dumps(record) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(result_fd, view):]
    os.close(result_fd)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def zygote(control_fd):
    """The fork server: import minivm, Unicorn and the test kit once, then fork
    one test process per request.  A request is a SEQPACKET message (the job)
    with two descriptors: the test's output pipe and its result pipe; the
    reply is the child's pid.  The child starts its own session, so the
    grader can kill it (and the student's process under it) as a group.
    Nothing of a lab or a submission is ever imported here."""
    import signal
    import socket
    import struct
    import minivm.labkit                                # noqa: F401 - preloaded for children
    import minivm.machine                               # noqa: F401 - (Unicorn)
    import minivm.loader                                # noqa: F401
    _harden()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)       # children are reaped by the kernel
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 2)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)                                 # the grader is gone
        try:
            job = json.loads(message)
            del message
            output_fd, result_fd = fds
        except (ValueError, TypeError):
            for fd in fds:
                os.close(fd)
            control.sendall(struct.pack("<i", -1))
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setsid()
                os.dup2(output_fd, 1)
                os.dup2(output_fd, 2)
                os.close(output_fd)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                os.chdir(job["cwd"])
                run_job(job, result_fd)
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        control.sendall(struct.pack("<i", pid))


def main():
    if sys.argv[1] == "--zygote":
        zygote(int(sys.argv[2]))
    result_fd = int(sys.argv[1])
    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    run_job(job, result_fd)


if __name__ == "__main__":
    main()
