//! The text encoder's configuration: a plain value that the model flags carry from a matcher run
//! to a new text GAN (`ModelFlags::text_encoder_config`), kept apart from the network in
//! [`super::matcher`] so that the flags do not depend on a family.

use serde::{Deserialize, Serialize};

use crate::data::captions::Vocab;

/// The text encoder's shape and words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextEncoderConfig {
    pub vocab: Vocab,
    /// Word embedding width.
    pub words: usize,
    /// Convolution channels.
    pub channels: usize,
    /// The embedding's width.
    pub dim: usize,
}
