#![allow(dead_code)]
pub mod netns;
pub mod smol;
