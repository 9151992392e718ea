//! Block mode at a failover: the blocks this node received of generations after the last
//! one it holds closed become closed generations of its copy (inspected like shipped ones,
//! so a foreign, damaged or unchained one is refused), and the failover loses only what the
//! old active wrote after them.

use super::node::Shared;
use crate::block_store::BlockStore;
use crate::layout::ReplicaLayout;
use crate::replica::Replica;
use crate::sealed::write_file_atomically;
use bluejet_engine::format::log_image::closed_image;
use bluejet_engine::LogPosition;
use std::sync::Arc;

/// Turns the block files that follow the copy's last inspected generation into inspected
/// generations; the position through which the copy now holds the old active's log, if any
/// block file was taken, and the position before which it holds everything (the same, or
/// the start of the next generation when the last one taken was received whole).
///
/// A generation taken in part is remembered (`blocks/partial.json`, sealed: the position
/// held): a failover whose mount is then refused leaves its image inspected and the block
/// file goes, and the next attempt must still know that the copy lacks the rest of that
/// generation (found by the cluster simulation, seed 621: it was taken as whole, and a
/// later failover reported lossless lost acknowledged commits).
pub(crate) fn salvage(
    shared: &Shared,
    replica: &mut Replica,
) -> (Option<LogPosition>, LogPosition) {
    let fs = shared.config.options.log.file_system.as_ref();
    let path = partial_path(shared);
    let (held, covered) = take_blocks(shared, replica);
    let remembered = match held {
        Some(held) if held == covered => crate::sealed::write(fs, &path, &held),
        Some(_) => forget_partial(shared),
        None => {
            let partial = crate::sealed::read::<LogPosition>(fs, &path).ok().flatten();
            let inspected = replica.board().inspected_through();
            if let Some(partial) = partial.filter(|partial| partial.generation == inspected) {
                return (Some(partial), partial);
            }
            Ok(())
        }
    };
    if let Err(error) = remembered {
        // Not remembered: a later attempt would take the generation as whole. Say so.
        let message = format!("the generation held in part is not remembered: {error}");
        shared.event("block-salvage-refused", None, &message);
    }
    (held, covered)
}

fn partial_path(shared: &Shared) -> std::path::PathBuf {
    ReplicaLayout::new(&shared.config.instance)
        .blocks()
        .join(crate::layout::PARTIAL_BLOCKS_FILE)
}

/// Forgets a generation held in part: it matters to the failover that took it only (once
/// the node is active, a later seed or resync must not find it: found by an adversarial
/// round, a reseed refused it as foreign).
pub(crate) fn forget_partial(shared: &Shared) -> Result<(), crate::error::ReplError> {
    let fs = shared.config.options.log.file_system.as_ref();
    let path = partial_path(shared);
    if !fs.exists(&path) {
        return Ok(());
    }
    fs.remove(&path)
        .map_err(|error| crate::error::ReplError::io(&path, "removing", error))
}

fn take_blocks(shared: &Shared, replica: &mut Replica) -> (Option<LogPosition>, LogPosition) {
    // The follower writes no block file meanwhile.
    let _busy = shared.blocks_busy.lock();
    let config = &shared.config;
    let fs = &config.options.log.file_system;
    let store = BlockStore::new(
        Arc::clone(fs),
        &config.instance,
        config.options.log.base_name,
    );
    let held_generations = store.generations().unwrap_or_default();
    let mut held = None;
    // The previous generation taken here: its digest on the active and in the copy.
    let mut chain: Option<(u32, u32)> = None;
    loop {
        let generation = replica.board().inspected_through() + 1;
        if !held_generations.contains(&generation) {
            return (held, covered(held, chain.is_some(), generation));
        }
        let taken = take(shared, &store, generation, replica, chain);
        match taken {
            Ok((length, digests)) => {
                chain = digests;
                let message =
                    format!("generation {generation}: {length} stream bytes taken from block mode");
                shared.event("block-salvage", None, &message);
                held = Some(LogPosition::new(generation, length));
            }
            Err(reason) => {
                let message = format!("generation {generation} from block mode refused: {reason}");
                shared.event("block-salvage-refused", None, &message);
                return (held, covered(held, chain.is_some(), generation));
            }
        }
    }
}

/// Everything before the position returned is in the copy: the end of the last generation
/// taken, or the start of `next` when that one was received whole or none was taken.
fn covered(held: Option<LogPosition>, whole: bool, next: u32) -> LogPosition {
    match held {
        Some(held) if !whole => held,
        _ => LogPosition::new(next, 0),
    }
}

/// Writes `generation`'s block file as a closed generation into the copy's incoming area and
/// inspects it; its stream length, and when it was received whole, its digest on the active
/// and of the image (what the next one's header chains to).
///
/// The image is not the active's file byte for byte (only its stream is the same), so the
/// header of a generation that follows one taken here names the active's digest of it: it is
/// checked against the digest the active sent when that generation ended, then made to name
/// the image's, so that the copy's own chain holds.
fn take(
    shared: &Shared,
    store: &BlockStore,
    generation: u32,
    replica: &mut Replica,
    chain: Option<(u32, u32)>,
) -> Result<(u32, Option<(u32, u32)>), String> {
    let (mut header, stream) = store.read(generation).map_err(|error| error.to_string())?;
    if let Some((active_digest, image_digest)) = chain {
        if header.previous_digest != active_digest {
            return Err(format!(
                "its header chains to digest {:#010x}, the active's previous generation had \
                 {active_digest:#010x}",
                header.previous_digest
            ));
        }
        header.previous_digest = image_digest;
    }
    let image = closed_image(&header, &stream)?;
    let end = store.completion(generation);
    if let Some(end) = &end {
        if end.length as usize != stream.len() {
            return Err(format!(
                "{} whole records held, the active's generation had {} bytes",
                stream.len(),
                end.length
            ));
        }
    }
    let digests = end.map(|end| (end.digest, crc32c::crc32c(&image)));
    let layout = ReplicaLayout::new(&shared.config.instance);
    let name = shared.config.options.log.base_name.closed(generation);
    let path = layout.incoming().join(name);
    let fs = shared.config.options.log.file_system.as_ref();
    write_file_atomically(fs, &path, &image).map_err(|error| error.to_string())?;
    replica.inspect();
    if replica.board().inspected_through() < generation {
        return Err("the inspector did not accept it (see the copy's events)".into());
    }
    Ok((
        crate::cluster::block_follow::generation_offset(stream.len()),
        digests,
    ))
}
