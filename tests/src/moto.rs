//! A real AWS-compatible server for the tests: `moto_server` (PyPI
//! `moto[server]`) on 127.0.0.1, installed into `target/moto-venv` the first
//! time it is needed, one per test binary, ended with the test process.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The moto version the figures in TOOLCHAIN-FACTS were taken with.
const MOTO: &str = "moto[server]==5.2.5";

pub struct Moto {
    pub port: u16,
    _process: Mutex<Child>,
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The moto server of this test binary, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO_SERVER: OnceLock<Moto> = OnceLock::new();
    MOTO_SERVER.get_or_init(start)
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The project's venv with moto installed (`target/moto-venv`), made the
/// first time. One test binary uses moto and cargo runs test binaries one at
/// a time, so no other process installs concurrently; a marker file written
/// last tells a finished install from an interrupted one.
fn moto_python() -> PathBuf {
    let venv = workspace().join("target").join("moto-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(format!("installed-{}", MOTO.replace(['[', ']', '='], "_")));
    if marker.is_file() {
        return python;
    }
    let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&system_python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("running python3 -m venv");
    assert!(status.success(), "creating the moto venv failed");
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", MOTO])
        .status()
        .expect("running pip");
    assert!(status.success(), "pip install {MOTO} failed");
    std::fs::write(&marker, MOTO).expect("writing the install marker");
    python
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start() -> Moto {
    let venv_python = moto_python();
    let port = free_port();
    // PR_SET_PDEATHSIG: moto dies with the test process, however it ends.
    // moto's threaded server runs DynamoDB requests concurrently without
    // isolation: a cancelled transaction restores a copy of the whole table
    // taken when it began, undoing what other requests wrote meanwhile.
    // DynamoDB serializes writes to an item; here every DynamoDB operation
    // takes one lock (tests/src/fakes/README.md).
    let launcher = format!(
        "import ctypes, functools, signal, sys, threading\n\
         ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n\
         from moto.dynamodb.models import DynamoDBBackend\n\
         lock = threading.RLock()\n\
         def serialized(operation):\n\
         \x20   @functools.wraps(operation)\n\
         \x20   def run(*args, **kwargs):\n\
         \x20       with lock:\n\
         \x20           return operation(*args, **kwargs)\n\
         \x20   return run\n\
         for name in ['transact_write_items', 'transact_get_items', 'update_item', 'put_item',\n\
         \x20            'delete_item', 'get_item', 'query', 'scan', 'batch_get_item', 'batch_write_item']:\n\
         \x20   setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))\n\
         from moto.server import main\n\
         sys.argv = ['moto_server', '-H', '127.0.0.1', '-p', '{port}']\n\
         main()\n"
    );
    // PR_SET_PDEATHSIG fires when the spawning *thread* ends, so moto is
    // spawned from a thread that lives as long as the test process.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let process = Command::new(venv_python)
            .args(["-c", &launcher])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        sender.send(process).expect("the starter waits");
        loop {
            std::thread::park();
        }
    });
    let process = receiver.recv().expect("moto started");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "moto_server did not listen on {port} within a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        port,
        _process: Mutex::new(process),
    }
}
