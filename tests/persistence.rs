mod common;
#[test]
fn placeholder_build() {}
