//! What an allocation really costs, for `used_memory`.
//!
//! `used_memory` is kept as a running sum of estimates (a counting global
//! allocator would need unsafe code, and would also count what is not the
//! dataset). For that sum to follow the process's real growth, each
//! estimate is what the allocator hands out, not what was asked for. The
//! server's allocator is mimalloc, which serves every request from a size
//! class: 8 bytes, then 16-byte steps up to 64 bytes (a 24-byte node takes
//! 32, a 40-byte one 48), then four classes per doubling, about 12.5%
//! apart, up to 512 KiB; a class that does not divide its page also pays
//! for the page's unusable tail. Larger requests get whole 4 KiB pages.
//! [`alloc_size`] is that rounding, and every collection charges
//! `alloc_size` of each of its allocations, capacities included, as
//! Redis's `used_memory` counts what its allocator reserved.
//!
//! Pure arithmetic: nothing here may walk a collection or touch the
//! allocator, because the keyspace calls it on every write.

/// Largest request mimalloc serves from a size class (`MI_LARGE_MAX_OBJ_SIZE`
/// with large pages enabled); larger ones get a page of their own.
const SIZE_CLASS_MAX: usize = 512 * 1024;

/// The OS page: what a block of its own costs once touched.
const OS_PAGE: usize = 4096;

/// Bytes the allocator reserves to serve a request of `n` bytes: the size
/// class (mimalloc's `mi_bin`), plus the class's share of what its pages
/// cannot use; 0 for 0, since Rust never allocates for an empty vector or
/// slice.
pub const fn alloc_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let words = n.div_ceil(8);
    if words <= 8 {
        // Blocks past one word keep 16-byte alignment (`MI_ALIGN2W`:
        // `max_align_t` is two words), so small classes step by 16.
        return if words == 1 {
            8
        } else {
            words.div_ceil(2) * 16
        };
    }
    if n > SIZE_CLASS_MAX {
        // A page of its own, touched OS page by OS page.
        return n.div_ceil(OS_PAGE) * OS_PAGE;
    }
    // Four classes per doubling: round up to a quarter of the highest
    // power of two below `words`.
    let top = usize::BITS - 1 - (words - 1).leading_zeros();
    let step = 1usize << (top - 2);
    let block = words.div_ceil(step) * step * 8;
    if block <= 1024 || block.is_power_of_two() {
        // Powers of two divide their pages; small classes lose under 2%
        // of one: neither is worth a division on every write.
        return block;
    }
    block_share(block)
}

/// A block's share of its page: the page divided by the blocks it holds.
/// Pages are 64 KiB for blocks up to 10 KiB, 512 KiB up to about 84 KiB,
/// 4 MiB beyond (`_mi_arenas_page_alloc`); page headers live apart, at
/// the arena's start, so only sizes that do not divide the page lose
/// room (a 10 KiB class fits 6 to a 64 KiB page).
const fn block_share(block: usize) -> usize {
    let page: usize = if block <= (64 * 1024 - 4096) / 6 {
        64 * 1024
    } else if block <= (512 * 1024 - 4096) / 6 {
        512 * 1024
    } else {
        4 * 1024 * 1024
    };
    page.div_ceil(page / block).div_ceil(8) * 8
}

/// Bytes held by a vector or boxed slice of `capacity` elements of `T`.
pub const fn array_size<T>(capacity: usize) -> usize {
    alloc_size(capacity * std::mem::size_of::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sizes_keep_sixteen_byte_alignment() {
        assert_eq!(alloc_size(0), 0);
        assert_eq!(alloc_size(1), 8);
        assert_eq!(alloc_size(8), 8);
        assert_eq!(alloc_size(9), 16);
        assert_eq!(alloc_size(24), 32);
        assert_eq!(alloc_size(33), 48);
        assert_eq!(alloc_size(40), 48);
        assert_eq!(alloc_size(56), 64);
        assert_eq!(alloc_size(63), 64);
        assert_eq!(alloc_size(64), 64);
    }

    /// The class sizes of mimalloc's bin table (`init.c`, `QNULL` rows) up
    /// to 1 KiB, where a page loses too little to be counted.
    #[test]
    fn classes_match_mimallocs_bins() {
        let bins = [
            80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
        ];
        for b in bins {
            assert_eq!(alloc_size(b), b, "{b} is a class");
            assert_eq!(alloc_size(b - 7), b, "{} rounds up to {b}", b - 7);
        }
        assert_eq!(alloc_size(65), 80);
        assert_eq!(alloc_size(81), 96);
        assert_eq!(alloc_size(129), 160);
    }

    /// Bigger classes carry their share of the page they cannot fill.
    #[test]
    fn big_classes_pay_for_their_pages() {
        let share = |page: usize, blocks: usize| page.div_ceil(blocks).div_ceil(8) * 8;
        // 1280-byte blocks: 51 to a 64 KiB page.
        assert_eq!(alloc_size(1100), share(65536, 51));
        // Powers of two fill their pages.
        assert_eq!(alloc_size(4096), 4096);
        assert_eq!(alloc_size(8192), 8192);
        assert_eq!(alloc_size(131_072), 131_072);
        // 10 KiB blocks, the last of the 64 KiB pages: 6 to a page.
        assert_eq!(alloc_size(10240), share(65536, 6));
        // 12 KiB blocks go to 512 KiB pages: 42 of them.
        assert_eq!(alloc_size(12288), share(512 * 1024, 42));
        // 96 KiB blocks go to 4 MiB pages: 42 of them.
        assert_eq!(alloc_size(98_304), share(4 << 20, 42));
    }

    #[test]
    fn big_requests_take_whole_pages() {
        assert_eq!(alloc_size(524_289), 528_384);
        assert_eq!(alloc_size(1 << 20), 1 << 20);
        assert_eq!(alloc_size((1 << 20) + 1), (1 << 20) + 4096);
    }

    #[test]
    fn never_less_than_asked_and_within_a_class_step() {
        for n in 1..600_000 {
            let a = alloc_size(n);
            assert!(a >= n, "{n}");
            assert!(a <= n + n / 3 + 15, "{n} -> {a}");
            assert_eq!(a % 8, 0, "{n} -> {a}");
        }
    }

    #[test]
    fn arrays_multiply_by_the_element_size() {
        assert_eq!(array_size::<u64>(0), 0);
        assert_eq!(array_size::<u64>(3), 32);
        assert_eq!(array_size::<[u8; 32]>(3), 96);
        assert_eq!(array_size::<u64>(9), 80);
    }
}
