//! Bad input, faults and hostile values: every defect found by trying flowlens as a hostile
//! user would gets a test here that fails without its fix.

use super::*;

