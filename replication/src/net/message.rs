//! The protocol's messages: the handshake, and the requests a node serves its peer over
//! one connection, each answered by one response.
//!
//! Every message travels in one frame ([`super::frame`]); the frame kind says which class
//! (hello, welcome, refusal, request, response) and the payload starts with the operation.
//! Decoding trusts nothing: every path is checked ([`WirePath`]), every length bounded, and a
//! message with bytes left over is refused.

use super::path::WirePath;
use super::tail::{Tail, TailAnswer};
use super::wire::{Reader, WireError, Writer};
use bluejet_engine::file::{Holder, OpenMode};
use std::io;

/// Frame kind of a [`Hello`].
pub const KIND_HELLO: u8 = 1;
/// Frame kind of a [`Welcome`].
pub const KIND_WELCOME: u8 = 2;
/// Frame kind of a refusal (its payload: the reason, UTF-8).
pub const KIND_REFUSED: u8 = 3;
/// Frame kind of a [`Request`].
pub const KIND_REQUEST: u8 = 4;
/// Frame kind of a [`Response`].
pub const KIND_RESPONSE: u8 = 5;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The most bytes one read or write request carries (a generation is sent in such pieces,
/// so a broken connection resumes where the last piece ended).
pub const MAX_CHUNK: u32 = 1 << 20;

/// Longest text field (names, reasons, comments).
const MAX_TEXT: u32 = 4096;
/// Most names in one listing.
const MAX_NAMES: u32 = 1 << 16;

/// The client's first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub version: u16,
    /// The client node's name (its certificate says the same).
    pub node: String,
    /// The cluster identity the client is bound to (empty: none yet).
    pub cluster: String,
    /// The highest epoch the client has seen.
    pub seen_epoch: u64,
}

/// What the serving node says of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Welcome {
    /// The serving node's name.
    pub node: String,
    /// Its cluster identity (empty: none yet).
    pub cluster: String,
    /// `joining`, `active` or `passive`.
    pub role: String,
    /// The epoch it knows (when active: the epoch it holds the database at).
    pub epoch: u64,
    /// The stream signature of its log, when it holds the database: random id and creation
    /// time.
    pub signature: Option<([u8; 16], u64)>,
    /// The timeline of its log (0 when it holds no database).
    pub timeline: u64,
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Opens a file (creating it with [`OpenMode::CreateNew`]); answered with
    /// [`Response::Opened`]: a handle the serving node keeps open for this connection, so
    /// that a rename or removal of the path does not change what the handle reads, as on a
    /// local file system.
    Open(WirePath, OpenMode),
    /// Reads up to `length` bytes at `offset` of an open handle ([`Response::Data`], short
    /// at the end).
    Read(u64, u64, u32),
    /// An open handle's file size.
    Size(u64),
    /// Writes bytes at an offset of an open handle.
    Write(u64, u64, Vec<u8>),
    /// Sets an open handle's file length.
    SetLen(u64, u64),
    /// Syncs an open handle's file data.
    Sync(u64),
    /// Closes a handle.
    Close(u64),
    /// Renames, replacing the target.
    Rename(WirePath, WirePath),
    /// Removes a file.
    Remove(WirePath),
    /// Lists a directory's names.
    List(WirePath),
    /// Syncs a directory.
    SyncDirectory(WirePath),
    /// Creates a directory and its parents.
    CreateDirectory(WirePath),
    /// Whether a path exists.
    Exists(WirePath),
    /// Takes an ownership lock for the connection's lifetime (or until unlocked).
    Lock(WirePath, Holder),
    /// Releases a lock taken on this connection.
    Unlock(u64),
    /// Whether a lock is held, and by whom.
    ProbeLock(WirePath),
    /// Block mode: the log bytes after a position ([`Response::Tail`]).
    Tail(Tail),
}

/// One response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Done.
    Done,
    /// A size.
    Size(u64),
    /// A file opened: its handle on this connection and its size.
    Opened(u64, u64),
    /// Bytes read.
    Data(Vec<u8>),
    /// Directory names.
    Names(Vec<String>),
    /// Yes or no.
    Flag(bool),
    /// A lock taken: its id on this connection.
    Locked(u64),
    /// A lock held by someone else (or, for a probe, held; `None`: holder unreadable).
    Held(Option<Holder>),
    /// A lock nobody holds.
    Free,
    /// The request failed on the serving node: the error's kind and text.
    Failed(io::ErrorKind, String),
    /// The answer to a [`Request::Tail`].
    Tail(TailAnswer),
}

impl Hello {
    /// The payload.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut writer = Writer::new();
        writer
            .u16(self.version)
            .str(&self.node)
            .str(&self.cluster)
            .u64(self.seen_epoch);
        writer.finish()
    }

    /// From a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let mut reader = Reader::new(payload);
        let hello = Self {
            version: reader.u16("version")?,
            node: reader.str("node", MAX_TEXT)?.to_owned(),
            cluster: reader.str("cluster", MAX_TEXT)?.to_owned(),
            seen_epoch: reader.u64("seen epoch")?,
        };
        reader.finish()?;
        Ok(hello)
    }
}

impl Welcome {
    /// The payload.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut writer = Writer::new();
        writer
            .str(&self.node)
            .str(&self.cluster)
            .str(&self.role)
            .u64(self.epoch);
        match &self.signature {
            Some((id, created)) => writer.u8(1).bytes(id).u64(*created),
            None => writer.u8(0),
        };
        writer.u64(self.timeline);
        writer.finish()
    }

    /// From a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let mut reader = Reader::new(payload);
        let node = reader.str("node", MAX_TEXT)?.to_owned();
        let cluster = reader.str("cluster", MAX_TEXT)?.to_owned();
        let role = reader.str("role", MAX_TEXT)?.to_owned();
        let epoch = reader.u64("epoch")?;
        let signature = match reader.u8("signature present")? {
            0 => None,
            _ => {
                let id = reader.bytes("signature id", 16)?;
                let id: [u8; 16] = id.try_into().map_err(|_| WireError::Short {
                    field: "signature id",
                    needed: 16,
                    remaining: id.len(),
                })?;
                Some((id, reader.u64("signature time")?))
            }
        };
        let timeline = reader.u64("timeline")?;
        reader.finish()?;
        Ok(Self {
            node,
            cluster,
            role,
            epoch,
            signature,
            timeline,
        })
    }
}

/// Operation codes of requests.
mod op {
    pub const OPEN: u8 = 1;
    pub const READ: u8 = 2;
    pub const SIZE: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const SET_LEN: u8 = 5;
    pub const SYNC: u8 = 6;
    pub const RENAME: u8 = 7;
    pub const REMOVE: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SYNC_DIRECTORY: u8 = 10;
    pub const CREATE_DIRECTORY: u8 = 11;
    pub const EXISTS: u8 = 12;
    pub const LOCK: u8 = 13;
    pub const UNLOCK: u8 = 14;
    pub const PROBE_LOCK: u8 = 15;
    pub const CLOSE: u8 = 16;
    pub const TAIL: u8 = 17;
}

impl Request {
    /// The payload.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::new();
        match self {
            Self::Open(path, mode) => put_path(w.u8(op::OPEN), path).u8(mode_code(*mode)),
            Self::Read(handle, offset, length) => {
                w.u8(op::READ).u64(*handle).u64(*offset).u32(*length)
            }
            Self::Size(handle) => w.u8(op::SIZE).u64(*handle),
            Self::Write(handle, offset, data) => {
                w.u8(op::WRITE).u64(*handle).u64(*offset).bytes(data)
            }
            Self::SetLen(handle, length) => w.u8(op::SET_LEN).u64(*handle).u64(*length),
            Self::Sync(handle) => w.u8(op::SYNC).u64(*handle),
            Self::Close(handle) => w.u8(op::CLOSE).u64(*handle),
            Self::Tail(tail) => {
                tail.put(w.u8(op::TAIL));
                &mut w
            }
            Self::Rename(from, to) => put_path(put_path(w.u8(op::RENAME), from), to),
            Self::Remove(path) => put_path(w.u8(op::REMOVE), path),
            Self::List(path) => put_path(w.u8(op::LIST), path),
            Self::SyncDirectory(path) => put_path(w.u8(op::SYNC_DIRECTORY), path),
            Self::CreateDirectory(path) => put_path(w.u8(op::CREATE_DIRECTORY), path),
            Self::Exists(path) => put_path(w.u8(op::EXISTS), path),
            Self::Lock(path, holder) => put_holder(put_path(w.u8(op::LOCK), path), holder),
            Self::Unlock(id) => w.u8(op::UNLOCK).u64(*id),
            Self::ProbeLock(path) => put_path(w.u8(op::PROBE_LOCK), path),
        };
        w.finish()
    }

    /// From a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let request = match r.u8("operation")? {
            op::OPEN => Self::Open(get_path(&mut r)?, get_mode(&mut r)?),
            op::READ => Self::Read(r.u64("handle")?, r.u64("offset")?, get_length(&mut r)?),
            op::SIZE => Self::Size(r.u64("handle")?),
            op::WRITE => Self::Write(
                r.u64("handle")?,
                r.u64("offset")?,
                r.bytes("data", MAX_CHUNK)?.to_vec(),
            ),
            op::SET_LEN => Self::SetLen(r.u64("handle")?, r.u64("length")?),
            op::SYNC => Self::Sync(r.u64("handle")?),
            op::CLOSE => Self::Close(r.u64("handle")?),
            op::TAIL => Self::Tail(Tail::get(&mut r, MAX_CHUNK)?),
            op::RENAME => Self::Rename(get_path(&mut r)?, get_path(&mut r)?),
            op::REMOVE => Self::Remove(get_path(&mut r)?),
            op::LIST => Self::List(get_path(&mut r)?),
            op::SYNC_DIRECTORY => Self::SyncDirectory(get_path(&mut r)?),
            op::CREATE_DIRECTORY => Self::CreateDirectory(get_path(&mut r)?),
            op::EXISTS => Self::Exists(get_path(&mut r)?),
            op::LOCK => Self::Lock(get_path(&mut r)?, get_holder(&mut r)?),
            op::UNLOCK => Self::Unlock(r.u64("lock id")?),
            op::PROBE_LOCK => Self::ProbeLock(get_path(&mut r)?),
            other => return Err(DecodeError::Unknown(other)),
        };
        r.finish()?;
        Ok(request)
    }

    /// Whether repeating the request after a broken connection is harmless (it changes
    /// nothing on the serving node).
    pub fn idempotent(&self) -> bool {
        matches!(
            self,
            Self::Read(..) | Self::Size(_) | Self::List(_) | Self::Exists(_) | Self::ProbeLock(_)
        )
    }
}

/// Response codes.
mod answer {
    pub const DONE: u8 = 1;
    pub const SIZE: u8 = 2;
    pub const DATA: u8 = 3;
    pub const NAMES: u8 = 4;
    pub const FLAG: u8 = 5;
    pub const LOCKED: u8 = 6;
    pub const HELD: u8 = 7;
    pub const FREE: u8 = 8;
    pub const FAILED: u8 = 9;
    pub const OPENED: u8 = 10;
    pub const TAIL: u8 = 11;
}

impl Response {
    /// The payload.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::new();
        match self {
            Self::Done => w.u8(answer::DONE),
            Self::Size(size) => w.u8(answer::SIZE).u64(*size),
            Self::Opened(handle, size) => w.u8(answer::OPENED).u64(*handle).u64(*size),
            Self::Tail(answer) => {
                answer.put(w.u8(answer::TAIL));
                &mut w
            }
            Self::Data(data) => w.u8(answer::DATA).bytes(data),
            Self::Names(names) => {
                w.u8(answer::NAMES).u32(
                    u32::try_from(names.len())
                        .expect("a listing fits u32: at most MAX_NAMES names are sent"),
                );
                names.iter().fold(&mut w, |w, name| w.str(name))
            }
            Self::Flag(flag) => w.u8(answer::FLAG).u8(u8::from(*flag)),
            Self::Locked(id) => w.u8(answer::LOCKED).u64(*id),
            Self::Held(None) => w.u8(answer::HELD).u8(0),
            Self::Held(Some(holder)) => put_holder(w.u8(answer::HELD).u8(1), holder),
            Self::Free => w.u8(answer::FREE),
            Self::Failed(kind, message) => w
                .u8(answer::FAILED)
                .u8(kind_code(*kind))
                .str(truncated(message)),
        };
        w.finish()
    }

    /// From a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let response = match r.u8("response")? {
            answer::DONE => Self::Done,
            answer::SIZE => Self::Size(r.u64("size")?),
            answer::OPENED => Self::Opened(r.u64("handle")?, r.u64("size")?),
            answer::TAIL => Self::Tail(TailAnswer::get(&mut r, MAX_CHUNK)?),
            answer::DATA => Self::Data(r.bytes("data", MAX_CHUNK)?.to_vec()),
            answer::NAMES => Self::Names(get_names(&mut r)?),
            answer::FLAG => Self::Flag(r.u8("flag")? != 0),
            answer::LOCKED => Self::Locked(r.u64("lock id")?),
            answer::HELD => match r.u8("holder present")? {
                0 => Self::Held(None),
                _ => Self::Held(Some(get_holder(&mut r)?)),
            },
            answer::FREE => Self::Free,
            answer::FAILED => Self::Failed(
                code_kind(r.u8("error kind")?),
                r.str("error", MAX_TEXT)?.to_owned(),
            ),
            other => return Err(DecodeError::Unknown(other)),
        };
        r.finish()?;
        Ok(response)
    }
}

/// Why a request or response could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A field is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// An operation or response code this build does not know.
    #[error("unknown operation {0}")]
    Unknown(u8),
    /// A path that is not a plain relative path.
    #[error("bad path: {0}")]
    Path(String),
}

fn put_path<'w>(w: &'w mut Writer, path: &WirePath) -> &'w mut Writer {
    w.u8(
        u8::try_from(path.components().len()).expect("a wire path has at most MAX_COMPONENTS (16)")
    );
    path.components().iter().fold(w, |w, name| w.str(name))
}

fn get_path(r: &mut Reader<'_>) -> Result<WirePath, DecodeError> {
    let count = r.u8("path length")? as usize;
    if count > super::path::MAX_COMPONENTS {
        return Err(DecodeError::Path(format!("{count} components")));
    }
    let mut components = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.str(
            "path component",
            u32::try_from(super::path::MAX_NAME_BYTES).expect("a small constant"),
        )?;
        components.push(name.to_owned());
    }
    WirePath::from_components(components).map_err(DecodeError::Path)
}

fn get_length(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let length = r.u32("length")?;
    if length > MAX_CHUNK {
        return Err(WireError::TooLong {
            field: "length",
            length: u64::from(length),
            limit: u64::from(MAX_CHUNK),
        }
        .into());
    }
    Ok(length)
}

fn get_names(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let count = r.u32("name count")?;
    if count > MAX_NAMES {
        return Err(WireError::TooLong {
            field: "name count",
            length: u64::from(count),
            limit: u64::from(MAX_NAMES),
        }
        .into());
    }
    // Each name takes at least its 4-byte length: the count cannot outrun the payload.
    let mut names = Vec::with_capacity((count as usize).min(r.remaining() / 4));
    for _ in 0..count {
        names.push(
            r.str(
                "name",
                u32::try_from(super::path::MAX_NAME_BYTES).expect("a small constant"),
            )?
            .to_owned(),
        );
    }
    Ok(names)
}

fn put_holder<'w>(w: &'w mut Writer, holder: &Holder) -> &'w mut Writer {
    w.u32(holder.pid)
        .str(&holder.host)
        .str(&holder.since)
        .u64(holder.since_micros)
        .str(&holder.program)
}

fn get_holder(r: &mut Reader<'_>) -> Result<Holder, DecodeError> {
    Ok(Holder {
        pid: r.u32("holder pid")?,
        host: r.str("holder host", MAX_TEXT)?.to_owned(),
        since: r.str("holder since", MAX_TEXT)?.to_owned(),
        since_micros: r.u64("holder since µs")?,
        program: r.str("holder program", MAX_TEXT)?.to_owned(),
    })
}

fn mode_code(mode: OpenMode) -> u8 {
    match mode {
        OpenMode::Read => 0,
        OpenMode::ReadWrite => 1,
        OpenMode::CreateNew => 2,
    }
}

fn get_mode(r: &mut Reader<'_>) -> Result<OpenMode, DecodeError> {
    match r.u8("open mode")? {
        0 => Ok(OpenMode::Read),
        1 => Ok(OpenMode::ReadWrite),
        2 => Ok(OpenMode::CreateNew),
        other => Err(DecodeError::Unknown(other)),
    }
}

/// The kinds a caller on the other side acts on; the rest travel as `Other`.
const KINDS: [io::ErrorKind; 8] = [
    io::ErrorKind::Other,
    io::ErrorKind::NotFound,
    io::ErrorKind::PermissionDenied,
    io::ErrorKind::AlreadyExists,
    io::ErrorKind::UnexpectedEof,
    io::ErrorKind::InvalidInput,
    io::ErrorKind::InvalidData,
    io::ErrorKind::StorageFull,
];

fn kind_code(kind: io::ErrorKind) -> u8 {
    KINDS
        .iter()
        .position(|&k| k == kind)
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(0)
}

fn code_kind(code: u8) -> io::ErrorKind {
    KINDS
        .get(code as usize)
        .copied()
        .unwrap_or(io::ErrorKind::Other)
}

fn truncated(message: &str) -> &str {
    let mut end = message.len().min(MAX_TEXT as usize);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(names: &[&str]) -> WirePath {
        WirePath::from_components(names.iter().map(|n| n.to_string()).collect()).unwrap()
    }

    #[test]
    fn every_request_round_trips() {
        let holder = Holder {
            pid: 7,
            host: "h".into(),
            since: "now".into(),
            since_micros: 9,
            program: "bluejet".into(),
        };
        let requests = [
            Request::Open(path(&["database", "E00.log"]), OpenMode::CreateNew),
            Request::Read(7, 5, 4096),
            Request::Write(7, 1, vec![1, 2, 3]),
            Request::Close(7),
            Request::Rename(path(&["a"]), path(&["b"])),
            Request::Lock(path(&["database", "bluejet.lock"]), holder),
            Request::Unlock(3),
            Request::List(WirePath::root()),
        ];
        for request in requests {
            let payload = request.encode().unwrap();
            assert_eq!(Request::decode(&payload).unwrap(), request);
        }
    }

    #[test]
    fn every_response_round_trips() {
        let responses = [
            Response::Done,
            Response::Opened(3, 1 << 40),
            Response::Data(vec![9; 100]),
            Response::Names(vec!["x".into(), "E00.log".into()]),
            Response::Held(None),
            Response::Failed(io::ErrorKind::StorageFull, "disk full".into()),
        ];
        for response in responses {
            let payload = response.encode().unwrap();
            assert_eq!(Response::decode(&payload).unwrap(), response);
        }
    }

    #[test]
    fn a_path_leaving_the_instance_is_refused_when_decoded() {
        let mut w = Writer::new();
        w.u8(op::REMOVE).u8(2).str("..").str("x");
        let payload = w.finish().unwrap();
        assert!(matches!(
            Request::decode(&payload),
            Err(DecodeError::Path(_))
        ));
    }

    #[test]
    fn a_read_longer_than_a_chunk_is_refused() {
        let mut w = Writer::new();
        put_path(w.u8(op::READ), &path(&["a"]))
            .u64(0)
            .u32(MAX_CHUNK + 1);
        assert!(Request::decode(&w.finish().unwrap()).is_err());
    }

    #[test]
    fn a_hello_and_a_welcome_round_trip() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            node: "b".into(),
            cluster: "c-1".into(),
            seen_epoch: 4,
        };
        assert_eq!(Hello::decode(&hello.encode().unwrap()).unwrap(), hello);
        let welcome = Welcome {
            node: "a".into(),
            cluster: "c-1".into(),
            role: "active".into(),
            epoch: 4,
            signature: Some(([7; 16], 99)),
            timeline: 4,
        };
        assert_eq!(
            Welcome::decode(&welcome.encode().unwrap()).unwrap(),
            welcome
        );
    }
}
