//! `promtool test rules` format (being written).
