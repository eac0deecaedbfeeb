#![forbid(unsafe_code)]

// mimalloc, not glibc's malloc: the hit path allocates and frees per request (header maps,
// buffers) and an idle connection's freed buffers must go back to the system; measured in
// CHANGELOG (issue 18).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    edge::cli::main()
}
