//! Tables sized for a load peak give their memory back when the load is
//! gone: a hash map keeps its buckets after its entries leave, so one
//! flood would hold its peak for the life of the process.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Below this capacity a table is not worth shrinking.
const FLOOR: usize = 64;

/// Halves (at least) a map that is less than a quarter full: its
/// capacity becomes twice its length. Called after removals, the cost is
/// amortised (a shrink follows only after the length fell by half again).
pub fn sparse<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > FLOOR && map.len() * 4 < map.capacity() {
        map.shrink_to((map.len() * 2).max(FLOOR));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_emptied_after_a_peak_shrinks_and_a_full_one_does_not() {
        let mut m: HashMap<u32, [u8; 64]> = (0..10_000).map(|i| (i, [0; 64])).collect();
        let peak = m.capacity();
        sparse(&mut m);
        assert_eq!(m.capacity(), peak, "a full map keeps its room");
        m.retain(|k, _| *k < 100);
        sparse(&mut m);
        assert!(m.capacity() < peak / 10, "{} of {peak}", m.capacity());
        assert_eq!(m.len(), 100);
        assert!((0..100).all(|k| m.contains_key(&k)));
        m.clear();
        sparse(&mut m);
        assert!(m.capacity() <= 2 * FLOOR);
    }
}
