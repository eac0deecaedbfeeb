//! A UDP relay between a QUIC client and a server on loopback that can hold the server's
//! datagrams back (so a client's handshake cannot complete while its early data is already
//! at the server) and keeps what the client sent (to replay it from another address).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

#[derive(Default)]
struct State {
    hold: bool,
    held: Vec<Vec<u8>>,
    from_client: Vec<Vec<u8>>,
    /// How many of `from_client` came before the first release: the client's first flight.
    first_flight: Option<usize>,
    client: Option<SocketAddr>,
}

pub struct UdpRelay {
    pub addr: SocketAddr,
    server: SocketAddr,
    state: Arc<Mutex<State>>,
    front: Arc<UdpSocket>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl UdpRelay {
    /// Relays one client to `server`.
    pub async fn start(server: SocketAddr) -> UdpRelay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("relay bind"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("relay bind"));
        back.connect(server).await.expect("relay connect");
        let addr = front.local_addr().expect("relay addr");
        let state = Arc::new(Mutex::new(State::default()));
        let up = {
            let (front, back, state) = (front.clone(), back.clone(), state.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    {
                        let mut s = state.lock().expect("relay lock");
                        s.client = Some(from);
                        s.from_client.push(buf[..n].to_vec());
                    }
                    let _ = back.send(&buf[..n]).await;
                }
            })
        };
        let down = {
            let (front, back, state) = (front.clone(), back.clone(), state.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = back.recv(&mut buf).await {
                    let to = {
                        let mut s = state.lock().expect("relay lock");
                        if s.hold {
                            s.held.push(buf[..n].to_vec());
                            continue;
                        }
                        s.client
                    };
                    if let Some(to) = to {
                        let _ = front.send_to(&buf[..n], to).await;
                    }
                }
            })
        };
        UdpRelay {
            addr,
            server,
            state,
            front,
            tasks: vec![up, down],
        }
    }

    /// From now on the server's datagrams wait in the relay.
    pub fn hold(&self) {
        self.state.lock().expect("relay lock").hold = true;
    }

    /// Sends what was held, and lets the rest through.
    pub async fn release(&self) {
        let (held, to) = {
            let mut s = self.state.lock().expect("relay lock");
            s.hold = false;
            if s.first_flight.is_none() {
                s.first_flight = Some(s.from_client.len());
            }
            (std::mem::take(&mut s.held), s.client)
        };
        if let Some(to) = to {
            for d in held {
                let _ = self.front.send_to(&d, to).await;
            }
        }
    }

    /// Sends the client's first flight (what it sent before the first release: its
    /// ClientHello and early data) to the server again, from another address: an attacker
    /// replaying captured early data.
    pub async fn replay(&self) {
        let sent = {
            let s = self.state.lock().expect("relay lock");
            let n = s.first_flight.unwrap_or(s.from_client.len());
            s.from_client[..n].to_vec()
        };
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("replay bind");
        for d in sent {
            let _ = sock.send_to(&d, self.server).await;
        }
        // Kept open a moment so that the server's answers have somewhere to go.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
