//! An established TLS connection to an authenticated peer node, either side.

use rustls::{ClientConnection, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A TLS connection whose handshake has completed: the peer is the node
/// [`TlsStream::peer_name`].
pub struct TlsStream {
    side: Side,
    peer: String,
}

/// Boxed: the two connection types differ in size, and a stream is moved around whole.
enum Side {
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl TlsStream {
    /// A stream over a client connection to `peer`.
    pub(crate) fn client(stream: StreamOwned<ClientConnection, TcpStream>, peer: &str) -> Self {
        Self {
            side: Side::Client(Box::new(stream)),
            peer: peer.to_owned(),
        }
    }

    /// A stream over a server connection from `peer`.
    pub(crate) fn server(stream: StreamOwned<ServerConnection, TcpStream>, peer: &str) -> Self {
        Self {
            side: Side::Server(Box::new(stream)),
            peer: peer.to_owned(),
        }
    }

    /// The socket, to set timeouts or shut it down.
    pub fn tcp(&self) -> &TcpStream {
        match &self.side {
            Side::Client(stream) => &stream.sock,
            Side::Server(stream) => &stream.sock,
        }
    }

    /// The peer node, as authenticated by its certificate.
    pub fn peer_name(&self) -> &str {
        &self.peer
    }

    /// Tells the peer that nothing more will be sent (TLS close_notify), so its reader sees
    /// a clean end rather than a cut connection.
    pub fn close(&mut self) -> io::Result<()> {
        match &mut self.side {
            Side::Client(stream) => stream.conn.send_close_notify(),
            Side::Server(stream) => stream.conn.send_close_notify(),
        }
        self.flush()
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.side {
            Side::Client(stream) => stream.read(buf),
            Side::Server(stream) => stream.read(buf),
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.side {
            Side::Client(stream) => stream.write(buf),
            Side::Server(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.side {
            Side::Client(stream) => stream.flush(),
            Side::Server(stream) => stream.flush(),
        }
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match self.side {
            Side::Client(_) => "client",
            Side::Server(_) => "server",
        };
        f.debug_struct("TlsStream")
            .field("peer", &self.peer)
            .field("role", &role)
            .finish()
    }
}
