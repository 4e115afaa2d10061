//! A cuttable TCP proxy between envmgr and moto that counts SQS calls.

use std::sync::atomic::Ordering;

use crate::moto::Moto;

/// A TCP proxy in front of moto that the test can cut and restore: the
/// daemon sees AWS become unreachable while moto keeps its state. It also
/// notes the SQS action of every request passing through.
pub struct Outage {
    pub endpoint: String,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sqs_calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Outage {
    pub fn in_front_of(moto: &Moto) -> Self {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let sqs_calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let target = ("127.0.0.1", moto.port);
        let cut = down.clone();
        let calls = sqs_calls.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut.load(Ordering::SeqCst) {
                    // Refused: the connection closes at once.
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let cut = cut.clone();
                let pipe = |mut from: std::net::TcpStream,
                            mut to: std::net::TcpStream,
                            cut: Arc<AtomicBool>,
                            calls: Option<Arc<Mutex<Vec<String>>>>| {
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 16 * 1024];
                        // The end of the last read: a header split between
                        // two reads is still seen whole.
                        let mut carry: Vec<u8> = Vec::new();
                        use std::io::{Read, Write};
                        while let Ok(n) = from.read(&mut buffer) {
                            if n == 0
                                || cut.load(Ordering::SeqCst)
                                || to.write_all(&buffer[..n]).is_err()
                            {
                                break;
                            }
                            if let Some(calls) = &calls {
                                carry.extend_from_slice(&buffer[..n]);
                                note_sqs_calls(&mut carry, calls);
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    cut.clone(),
                    Some(calls.clone()),
                );
                pipe(server, client, cut, None);
            }
        });
        Self {
            endpoint,
            down,
            sqs_calls,
        }
    }

    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// How many requests of this SQS action (`ChangeMessageVisibility`,
    /// `DeleteMessageBatch`, ...) passed through so far.
    pub fn sqs_calls(&self, action: &str) -> usize {
        self.sqs_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|a| *a == action)
            .count()
    }
}

/// The SQS JSON protocol names the action in a header,
/// `X-Amz-Target: AmazonSQS.{Action}`: note each complete one in `seen`,
/// keep what may be the start of the next in `carry`.
fn note_sqs_calls(carry: &mut Vec<u8>, calls: &std::sync::Mutex<Vec<String>>) {
    const PREFIX: &[u8] = b"AmazonSQS.";
    let mut from = 0;
    while let Some(at) = carry[from..]
        .windows(PREFIX.len())
        .position(|w| w == PREFIX)
        .map(|p| from + p)
    {
        let name_start = at + PREFIX.len();
        let Some(end) = carry[name_start..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map(|p| name_start + p)
        else {
            // The name goes on in the next read.
            carry.drain(..at);
            return;
        };
        calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(String::from_utf8_lossy(&carry[name_start..end]).into_owned());
        from = end;
    }
    let keep = carry.len().saturating_sub(PREFIX.len());
    carry.drain(..keep.max(from).min(carry.len()));
}
