//! An async mail server embedding BlueJet, on tokio.
//!
//! Clients speak a line protocol over TCP: `DELIVER <mailbox> <message-id> <body>` stores a
//! message and its folder entry in one durable transaction (at most once per message id),
//! `FETCH <message-id>` returns a body, and `LIST <mailbox>` returns a folder's message ids.
//!
//! What it shows:
//! - `Database` is a cheap handle: every connection task holds a clone.
//! - Commits block on the disk (an fsync), so they run on tokio's blocking pool: the write
//!   transaction is owned and `Send`, begun, filled and committed there.
//! - A read transaction is an owned snapshot (`Send + 'static`): `LIST` keeps one across the
//!   `.await`s of writing its answer, and every line it writes comes from the same state
//!   however many deliveries commit meanwhile.
//!
//! Run with `cargo run -p bluejet-engine --example tokio_server`; `cargo test` runs it too.

use bluejet_engine::{Database, DbError, Options, ReadTransaction};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

type Error = Box<dyn std::error::Error + Send + Sync>;

const MESSAGES: &str = "messages";
const FOLDERS: &str = "folders";
const CLIENTS: usize = 4;
const MESSAGES_PER_CLIENT: usize = 25;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let directory = tempfile::tempdir()?;
    let db = Database::open(directory.path(), Options::default())?;
    let schema = db.clone();
    tokio::task::spawn_blocking(move || create_tables(&schema)).await??;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(serve(listener, db.clone(), stopped));

    let mut clients = JoinSet::new();
    for client in 0..CLIENTS {
        clients.spawn(deliver_and_read(address, client));
    }
    while let Some(result) = clients.join_next().await {
        result??;
    }
    // The server stops accepting and waits for its connections (their clients are gone),
    // so that every clone of the handle is dropped before the close.
    if stop.send(()).is_err() {
        eprintln!("the server had stopped before it was told to");
    }
    server.await??;

    let read = db.begin_read()?;
    let stored = read.open_table(MESSAGES)?.len();
    println!("{stored} messages stored by {CLIENTS} clients");
    assert_eq!(stored, (CLIENTS * MESSAGES_PER_CLIENT) as u64);
    drop(read);
    db.close()?;
    Ok(())
}

fn create_tables(db: &Database) -> Result<(), DbError> {
    let mut write = db.begin_write()?;
    write.create_table(MESSAGES)?;
    write.create_table(FOLDERS)?;
    write.commit().map(drop)
}

/// Accepts connections until told to stop, then waits for the open ones to end; each is
/// served by its own task holding a clone of the database handle.
async fn serve(
    listener: TcpListener,
    db: Database,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), Error> {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                connections.spawn(connection(stream, db.clone()));
            }
            _ = &mut stop => break,
        }
    }
    while let Some(result) = connections.join_next().await {
        result??;
    }
    Ok(())
}

async fn connection(stream: TcpStream, db: Database) -> Result<(), Error> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("DELIVER"), Some(mailbox), Some(id), Some(body)) => {
                let stored = deliver(&db, mailbox, id, body).await?;
                let answer = if stored { "STORED\n" } else { "DUPLICATE\n" };
                writer.write_all(answer.as_bytes()).await?;
            }
            (Some("FETCH"), Some(id), None, None) => {
                let read = db.begin_read()?;
                let body = read.open_table(MESSAGES)?.get(id.as_bytes())?;
                let answer = match body {
                    Some(body) => format!("BODY {}\n", String::from_utf8_lossy(&body)),
                    None => "NONE\n".to_owned(),
                };
                writer.write_all(answer.as_bytes()).await?;
            }
            (Some("LIST"), Some(mailbox), None, None) => {
                // One snapshot for the whole answer, held across every write's `.await`.
                let read = db.begin_read()?;
                let ids = folder(&read, mailbox)?;
                writer
                    .write_all(format!("COUNT {}\n", ids.len()).as_bytes())
                    .await?;
                let messages = read.open_table(MESSAGES)?;
                for id in ids {
                    // Read after the previous line's `.await`, from the same state.
                    let bytes = messages.get(id.as_bytes())?.map_or(0, |body| body.len());
                    writer
                        .write_all(format!("ID {id} {bytes}\n").as_bytes())
                        .await?;
                }
            }
            _ => writer.write_all(b"ERROR unknown command\n").await?,
        }
    }
    Ok(())
}

/// The message ids of `mailbox`, in order, as the snapshot `read` sees them.
fn folder(read: &ReadTransaction, mailbox: &str) -> Result<Vec<String>, DbError> {
    let prefix = format!("{mailbox}/");
    let mut ids = Vec::new();
    for entry in read.open_table(FOLDERS)?.entries(prefix.as_bytes()..)? {
        let entry = entry?;
        let Some(id) = entry.key().strip_prefix(prefix.as_bytes()) else {
            break;
        };
        ids.push(String::from_utf8_lossy(id).into_owned());
    }
    Ok(ids)
}

/// Stores a message and its folder entry in one durable transaction, on the blocking pool;
/// `false` if the message id was stored before.
async fn deliver(db: &Database, mailbox: &str, id: &str, body: &str) -> Result<bool, Error> {
    let db = db.clone();
    let (folder_key, id, body) = (format!("{mailbox}/{id}"), id.to_owned(), body.to_owned());
    let stored = tokio::task::spawn_blocking(move || -> Result<bool, DbError> {
        let mut write = db.begin_write()?;
        if write.get(MESSAGES, id.as_bytes())?.is_some() {
            return Ok(false);
        }
        write.insert(MESSAGES, id.as_bytes(), body.as_bytes())?;
        write.insert(FOLDERS, folder_key.as_bytes(), b"")?;
        write.commit()?;
        Ok(true)
    })
    .await??;
    Ok(stored)
}

/// A client: delivers its messages (each twice: the second is a duplicate), fetches them
/// back and lists its mailbox.
async fn deliver_and_read(address: SocketAddr, client: usize) -> Result<(), Error> {
    let stream = TcpStream::connect(address).await?;
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let mut ask = async |request: String| -> Result<String, Error> {
        writer.write_all(request.as_bytes()).await?;
        Ok(lines.next_line().await?.ok_or("the server hung up")?)
    };
    let mailbox = format!("box{client}");
    for n in 0..MESSAGES_PER_CLIENT {
        let id = format!("<{client}.{n}@example.org>");
        for expected in ["STORED", "DUPLICATE"] {
            let answer = ask(format!("DELIVER {mailbox} {id} hello {n}\n")).await?;
            assert_eq!(answer, expected, "delivering {id}");
        }
        let body = ask(format!("FETCH {id}\n")).await?;
        assert_eq!(body, format!("BODY hello {n}"));
    }
    let count = ask(format!("LIST {mailbox}\n")).await?;
    assert_eq!(count, format!("COUNT {MESSAGES_PER_CLIENT}"));
    for _ in 0..MESSAGES_PER_CLIENT {
        let line = lines.next_line().await?.ok_or("the server hung up")?;
        assert!(line.starts_with("ID <"), "a folder line: {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_server_stores_fetches_and_lists_for_concurrent_clients() {
        super::main().unwrap();
    }
}
