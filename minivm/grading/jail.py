"""The operating system's walls around a submission's processes.

enter() sets up each new process between fork and exec, while it still has
the grader's (root's) powers: its slot's cgroups (memory and process count
for all its processes together), RLIMIT_NPROC (counted per user id), a
network and a mount namespace with a chroot into an empty tmpfs that holds
read-only binds of the system, Python and minivm plus its own folder, /proc
with hidepid=invisible, and last the slot's own user id with no groups.
kill_all() ends every process of that user id, double-forked or not.  Where
a step is refused (not root, Docker without CAP_SYS_ADMIN), probe() finds
out and the grader says what is missing; a Watchdog stands in for a missing
memory cgroup.  A jail is plain data (a dict) so that the grader can hand
it to its judge process in the environment (readable by root only).
"""
import ctypes
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MNT_DETACH = 2
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
UIDS = (1_500_000_000, 2_000_000_000)   # slot user ids are drawn from here
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
HOME_MB = 128                # the slot's folder: the submission's copy, the tests' files
DEVICES = ("null", "zero", "full", "random", "urandom")
CGROUP_LIMITS = (            # (v1 controller folder, limit file, what it limits)
    ("memory", "memory.limit_in_bytes", "memory"), ("pids", "pids.max", "processes"),
    ("", "memory.max", "memory"), ("", "pids.max", "processes"))

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount(source, target, kind, flags, data=None):
    _check(_libc.mount(source and source.encode(), target.encode(), kind and kind.encode(),
                       flags, data and data.encode()), f"mount {target}")


# -- the grader's side: make the slots ------------------------------------------------------


def python():
    """The interpreter submission processes run (its real path: a venv's is a link)."""
    return os.path.realpath(sys.executable)


def cgroup_of(controller):
    """This process's folder in a cgroup hierarchy ("" for the unified one), or None."""
    try:
        with open("/proc/self/cgroup") as stream:
            for line in stream:
                _, names, path = line.rstrip("\n").split(":", 2)
                if (controller and controller in names.split(",")) or (not controller and not names):
                    base = os.path.join("/sys/fs/cgroup", controller)
                    return os.path.join(base, path.lstrip("/"))
    except OSError:
        pass
    return None


def _make_cgroups(name, memory_mb, processes):
    """{"memory": folder, "processes": folder} of the cgroups this process could make."""
    made = {}
    for controller, limit_file, what in CGROUP_LIMITS:
        parent = cgroup_of(controller)
        if what in made or parent is None or not os.path.isdir(parent):
            continue
        folder = os.path.join(parent, name)
        try:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, limit_file), "w") as stream:
                stream.write(str(memory_mb << 20 if what == "memory" else processes))
            made[what] = folder
        except OSError:
            try:
                os.rmdir(folder)
            except OSError:
                pass
    return made


def unused_uid():
    while True:
        uid = random.randrange(*UIDS)
        if not processes_of(uid):
            return uid


def bytecode_cache(name):
    """A folder of compiled modules only the grader's user can write (or read:
    under its home), kept between runs: ~/.cache/minivm/NAME."""
    folder = os.path.join(os.path.expanduser("~"), ".cache", "minivm", name)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def compiled_minivm():
    """minivm compiled into its own cache, for submission processes (read-only to them:
    their own compiled files could not be trusted by the next submission)."""
    import compileall
    import minivm
    folder, saved = bytecode_cache("submissions"), sys.pycache_prefix
    sys.pycache_prefix = folder
    try:
        compileall.compile_dir(os.path.dirname(os.path.abspath(minivm.__file__)), quiet=2)
    finally:
        sys.pycache_prefix = saved
    return folder


def make(work, memory_mb, processes, hidden=()):
    """A jail for one slot: a user id, its folder under `work`, its cgroups.
    `hidden`: paths the submission must not see (they are simply not in its view)."""
    root = os.geteuid() == 0
    uid = unused_uid() if root else None
    home = os.path.join(work, f"slot-{uid or len(os.listdir(work))}")
    os.makedirs(home, mode=0o700)
    mount_point = home + ".root"
    os.makedirs(mount_point, mode=0o700)
    if uid is not None:
        try:
            os.chown(home, uid, uid)
        except OSError:         # a user namespace that maps only us: no other user id
            uid = None
    if root:
        _cap_home(home, uid)
    binds = _binds(hidden)
    jail = {"uid": uid, "home": home, "root": mount_point, "memory_mb": memory_mb,
            "processes": processes, "cgroups": {}, "namespaces": root, "binds": binds,
            "masks": _masks(binds, hidden)}
    if uid is not None:
        jail["cgroups"] = _make_cgroups(f"minivm-grade-{uid}", memory_mb, processes)
    return jail


def _cap_home(home, uid):
    """The slot's folder becomes a tmpfs of HOME_MB: what the student's processes
    write is bounded in total, not just per file (RLIMIT_FSIZE).  Where mounts
    are refused the folder stays a plain one on the grader's disk."""
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    try:
        _mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, f"size={HOME_MB}m,mode=0700{owner}")
    except OSError:
        pass


def _binds(hidden):
    """What the submission's view holds besides its folder: the system's
    programs and libraries, Python, its site-packages, minivm and its guests."""
    import minivm
    from minivm.datafiles import data_folders
    paths = [os.path.join("/", name) for name in SYSTEM]
    paths += [sys.base_prefix, sys.prefix, os.path.dirname(os.path.abspath(minivm.__file__))]
    paths += data_folders("firmware") + [compiled_minivm()]
    paths += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    paths.append("/etc/ld.so.cache")
    hidden = [os.path.realpath(h) for h in hidden]
    found = []
    for path in paths:
        if os.path.lexists(path) and path not in found and not any(
                os.path.realpath(path) == h or os.path.realpath(path).startswith(h + os.sep)
                for h in hidden):
            found.append(path)
    return found


def from_environment():
    """The jail the grader's judge process was given ($MINIVM_GRADE_JAIL), or None."""
    text = os.environ.get("MINIVM_GRADE_JAIL")
    return json.loads(text) if text else None


def _masks(binds, hidden):
    """Folders inside the binds to cover with an empty tmpfs: the labs installed
    with minivm (solutions, hidden tests) and anything else hidden in there."""
    from minivm.datafiles import data_folders
    inside = [os.path.realpath(b) for b in binds]
    return [h for h in map(os.path.realpath, [*hidden, *data_folders("labs")])
            if any(h.startswith(b + os.sep) for b in inside)]


def remove_tree(*paths):
    """Remove folders a submission may have filled, however deep: rm(1) walks
    without recursing (shutil.rmtree recurses once per level) and never
    follows a link or leaves the file system."""
    if paths:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", *paths], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remove(jail):
    """Undo make(), once nothing of the jail runs any more."""
    for folder in jail["cgroups"].values():
        try:
            os.rmdir(folder)
        except OSError:
            pass
    _libc.umount2(jail["home"].encode(), MNT_DETACH)
    remove_tree(jail["home"])
    try:
        os.rmdir(jail["root"])
    except OSError:
        pass


def hand_over(jail):
    """Give the jail's user everything in its folder (the test made some of it as root).
    The slot's processes may still run and swap folders for links meanwhile: the
    walk goes by folder descriptors (never through a link) and changes only the
    entries of the folder it holds open, never what a link points to."""
    if jail["uid"] is None:
        return
    uid = jail["uid"]
    os.chown(jail["home"], uid, uid, follow_symlinks=False)
    for _, folders, files, folder_fd in os.fwalk(jail["home"], follow_symlinks=False):
        for name in folders + files:
            try:
                os.chown(name, uid, uid, dir_fd=folder_fd, follow_symlinks=False)
            except FileNotFoundError:       # removed meanwhile
                pass


# -- the new process's side -------------------------------------------------------------------


def enter(jail):
    """Run in a submission's new process before exec: limits, cgroups,
    namespaces and view, then the slot's user id.  Anything failing here
    fails the start (the probe found out beforehand what works)."""
    for folder in jail["cgroups"].values():
        with open(os.path.join(folder, "cgroup.procs"), "w") as stream:
            stream.write(str(os.getpid()))
    if jail["uid"] is not None:
        processes = jail["processes"]
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    if jail["namespaces"]:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
        _build_view(jail)
    if jail["uid"] is not None:
        os.setgroups([])
        os.setgid(jail["uid"])
        os.setuid(jail["uid"])


def _build_view(jail):
    """Mount namespace: an empty tmpfs with read-only binds, then chroot into it."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    new = jail["root"]
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for path in jail["binds"]:
        target = new + path
        if os.path.islink(path) and os.path.dirname(path) == "/":
            os.symlink(os.readlink(path), target)        # /lib -> usr/lib
            continue
        _bind(path, target, read_only=True)
    for path in jail["masks"]:
        if os.path.isdir(new + path):
            _mount("tmpfs", new + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    for name in DEVICES:
        _bind(f"/dev/{name}", f"{new}/dev/{name}", read_only=False)
    _bind(jail["home"], new + jail["home"], read_only=False)
    os.makedirs(new + "/proc")
    _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    _mount(None, new, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(new)
    os.chdir("/")       # read-only: `python -m` puts the working folder first on sys.path


def _bind(path, target, read_only):
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(path, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


# -- ending every process of a jail ------------------------------------------------------------


def processes_of(uid, candidates=None):
    """{pid: (state, parent pid, resident KiB)} of the processes whose real uid
    is uid, among `candidates` (pids) or all of /proc."""
    found = {}
    for name in candidates if candidates is not None else os.listdir("/proc"):
        if not str(name).isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as stream:
                fields = dict(line.split(":", 1) for line in stream if ":" in line)
        except OSError:
            continue
        if int(fields.get("Uid", "-1 ").split()[0]) == uid:
            found[int(name)] = (fields["State"].split()[0], int(fields["PPid"]),
                                int(fields.get("VmRSS", "0 kB").split()[0]))
    return found


def _processes(jail):
    """processes_of the jail's user: from its pids cgroup when it has one (its
    processes cannot leave it), else from all of /proc."""
    folder = jail["cgroups"].get("processes")
    if folder is None:
        return processes_of(jail["uid"])
    with open(os.path.join(folder, "cgroup.procs")) as stream:
        return processes_of(jail["uid"], stream.read().split())


def kill_all(jail, seconds=5.0, reap_any=False):
    """Kill every process of the jail's user (double-forked, setsid'ed ones too)
    and reap those left to us (all our children with reap_any: the judge's are
    only the submission's); then empty the user's kernel keyrings, which outlive
    its processes.  True once none runs any more."""
    uid = jail["uid"]
    if uid is None:
        return True
    stop_at = time.monotonic() + seconds
    while any(info[0] != "Z" for info in _processes(jail).values()):
        if time.monotonic() > stop_at:
            return False
        _as_user(uid, lambda: os.kill(-1, signal.SIGKILL))  # reaches exactly its processes
        _reap(uid, reap_any)
        time.sleep(0.005)
    _reap(uid, reap_any)            # zombies count against the user's process cap
    _as_user(uid, _clear_keyrings)
    return True


KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219}   # the keyctl system call's number
KEYCTL_CLEAR, USER_KEYRING, USER_SESSION_KEYRING = 7, -4, -5


def _clear_keyrings():
    """Empty the user's keyrings: the next test (or the next student of the slot,
    under the same user id) finds nothing a submission left in the kernel."""
    number = KEYCTL.get(os.uname().machine)
    if number is not None:
        for keyring in (USER_KEYRING, USER_SESSION_KEYRING):
            _libc.syscall(number, KEYCTL_CLEAR, keyring)


def _as_user(uid, action):
    """Run action in a child process that has become the user uid (no groups)."""
    child = os.fork()
    if child == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            action()
        finally:
            os._exit(0)
    os.waitpid(child, 0)


def _reap(uid, reap_any):
    if reap_any:
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    return
            except ChildProcessError:
                return
    for pid, (state, parent, _) in processes_of(uid).items():
        if state == "Z" and parent == os.getpid():
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def harden_judge():
    """For the judge: no one may read its memory (not even its own user), no
    core dumps, and orphaned submission processes become its children (to reap)."""
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Watchdog:
    """Where no memory cgroup could be made: sum the resident memory of each
    jail's processes every 0.2 s and kill them all past the jail's cap."""

    def __init__(self, jails):
        import threading
        self.jails = [j for j in jails if j["uid"] is not None and "memory" not in j["cgroups"]]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        if self.jails:
            self.thread.start()

    def _watch(self):
        while not self.stop.wait(0.2):
            for jail in self.jails:
                kib = sum(info[2] for info in processes_of(jail["uid"]).values())
                if kib > jail["memory_mb"] << 10:
                    kill_all(jail, seconds=1)

    def close(self):
        self.stop.set()
        if self.jails:
            self.thread.join()


# -- what holds ----------------------------------------------------------------------------------

PROBE = """
import json, os, resource, sys
facts = {"uid": os.getuid(), "groups": os.getgroups(), "net": os.readlink("/proc/self/ns/net"),
         "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
         "cgroups": open("/proc/self/cgroup").read(),
         "sees": [p for p in sys.argv[1:] if os.path.exists(p)]}
print(json.dumps(facts))
"""


def probe(jail, secrets):
    """Start one process in the jail; (jail to use, names of missing protections).
    `secrets`: paths it must not see (the lab, the submissions, the grader's /proc entry).
    If the jail's namespaces or user id cannot be set up, falls back step by step."""
    missing = []
    for attempt in ("full", "no namespaces", "no user"):
        if attempt == "no namespaces":
            jail["namespaces"] = False
        if attempt == "no user":
            jail["uid"], jail["cgroups"] = None, {}
        try:
            done = subprocess.run([python(), "-S", "-c", PROBE, *secrets], capture_output=True,
                                  text=True, timeout=30, cwd=jail["home"], env={},
                                  preexec_fn=lambda: enter(jail))
            facts = json.loads(done.stdout)
            break
        except (OSError, ValueError, subprocess.SubprocessError):
            kill_all(jail)
            continue
    else:
        return jail, ["every protection (a jailed process could not start)"]
    kill_all(jail)
    if facts["uid"] == os.getuid():
        missing.append("a user id of its own (not root)")
    if facts["net"] == os.readlink("/proc/self/ns/net"):
        missing.append("network isolation")
    if facts["sees"]:
        missing.append(f"a private view of the files (it can see {', '.join(facts['sees'][:3])})")
    if "memory" not in jail["cgroups"]:
        missing.append("a memory cgroup (a watchdog sums its memory instead)"
                       if jail["uid"] is not None else "a memory cap for all its processes")
    if jail["uid"] is None:
        missing.append("a process count cap and killing processes that leave its session")
    return jail, missing
