//! A set of activities as the bits one policy interned them to.

/// Up to 256 activities: the bits a policy interned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActivitySet([u64; 4]);

impl ActivitySet {
    pub(crate) fn insert(&mut self, bit: u8) {
        self.0[usize::from(bit >> 6)] |= 1 << (bit & 63);
    }

    /// Whether every activity of `required` is in `self`.
    pub fn contains_all(&self, required: &ActivitySet) -> bool {
        self.0.iter().zip(&required.0).all(|(have, need)| have & need == *need)
    }

    /// Whether some activity of `any` is in `self`.
    pub fn intersects(&self, any: &ActivitySet) -> bool {
        self.0.iter().zip(&any.0).any(|(have, want)| have & want != 0)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    pub(crate) fn union(mut self, other: &ActivitySet) -> ActivitySet {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
        self
    }
}
