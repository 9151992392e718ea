//! Shared helpers of BlueJet's end-to-end tests.
