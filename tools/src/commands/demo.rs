//! `bluejet demo`: the entry of the demo, whose code lives in [`crate::demo`] apart from the
//! administrator's commands.

use crate::demo::{self, DemoOptions};
use crate::exit::{ToolError, Verdict};

/// Runs the demo with `options`.
pub fn run(options: &DemoOptions) -> Result<Verdict, ToolError> {
    demo::run(options)
}
