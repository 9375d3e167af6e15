"""Submission processes started by fork, not exec: the judge's spawner.

Starting a fresh Python (and Unicorn) for every labkit.load costs more than
most tests.  So the judge forks, once and before pytest imports any lab test
(the spawner holds no test code, hidden or not), a spawner that has minivm,
Unicorn and the sandbox loaded.  For each submission process it forks a
waiter (root, outside the jail), which forks the submission process: that
one closes every descriptor but its pipes, enters the jail (jail.enter) and
serves the student's module (sandbox.serve).  The waiter reports on a status
pipe the submission process's pid, then its wait status when it ends.
"""
import json
import os
import signal
import socket
import struct
import time

from minivm.grading import jail as jails
from minivm.grading import sandbox

STATUS = struct.Struct("<i")


class Spawned:
    """What labkit needs of a subprocess.Popen, for a process the spawner started."""

    def __init__(self, status_fd):
        self.status_fd = status_fd
        self.pid = STATUS.unpack(_read_exactly(status_fd, STATUS.size))[0]
        self.returncode = None
        os.set_blocking(status_fd, False)

    def poll(self):
        if self.returncode is None:
            try:
                data = os.read(self.status_fd, STATUS.size)
            except BlockingIOError:
                return None
            status = STATUS.unpack(data)[0] if len(data) == STATUS.size else -1
            self.returncode = os.waitstatus_to_exitcode(status) if status >= 0 else -9
            os.close(self.status_fd)
        return self.returncode

    def kill(self):
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, timeout=None):
        stop_at = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if stop_at is not None and time.monotonic() > stop_at:
                import subprocess
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.002)
        return self.returncode


def _read_exactly(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise OSError("the spawner is gone")
        data += chunk
    return data


class Spawner:
    def __init__(self, jail):
        import minivm.machine                        # noqa: F401 - loaded once, for the forks
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if os.fork() == 0:
            self.control.close()
            _serve(theirs, jail)
        theirs.close()

    def spawn(self, settings, env, request_r, reply_w, output_w):
        """Start one submission process: a Spawned."""
        status_r, status_w = os.pipe()
        try:
            socket.send_fds(self.control, [json.dumps([settings, env]).encode()],
                            [request_r, reply_w, output_w, status_w])
        finally:
            os.close(status_w)
        return Spawned(status_r)


def _serve(control, jail):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)    # waiters are reaped by the kernel
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)                              # the judge is gone
        if os.fork() == 0:
            control.close()
            _wait_for(jail, json.loads(message), *fds)
        for fd in fds:
            os.close(fd)


def _wait_for(jail, message, request_r, reply_w, output_w, status_w):
    """The waiter: start the submission process, report its pid and its end."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    child = os.fork()
    if child == 0:
        try:
            _become_submission(jail, message, request_r, reply_w, output_w)
        finally:
            os._exit(70)
    for fd in (request_r, reply_w, output_w):
        os.close(fd)
    os.write(status_w, STATUS.pack(child))
    status = os.waitpid(child, 0)[1]
    os.write(status_w, STATUS.pack(status))
    os._exit(0)


def _become_submission(jail, message, request_r, reply_w, output_w):
    settings, env = message
    os.setsid()
    os.dup2(output_w, 1)
    os.dup2(output_w, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    low = 3
    for fd in sorted({request_r, reply_w}) + [os.sysconf("SC_OPEN_MAX")]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    jails.enter(jail)
    os.environ.clear()
    os.environ.update(env)
    settings.update(parent=os.getppid(), forked=True)
    sandbox.serve(request_r, reply_w, settings)
