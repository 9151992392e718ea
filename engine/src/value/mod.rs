//! Values stored out of line.

pub mod long;
