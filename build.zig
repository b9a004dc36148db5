// build.zig - builds the broker `ringcast`, its unit tests and benchmarks.
//
// Zig is pinned (0.15.2, from PyPI; scripts/setup installs it, scripts/zig runs it).
// Steps:
//   zig build                      broker + every test binary (zig-out/bin, zig-out/test-bin)
//   zig build run -- ARGS          start the broker
//   zig build test                 the whole suite (tests/run.py: unit + integration)
//   zig build test-unit            unit tests only
//   zig build test-integration     integration tests only
// Options: -Dtsan=true (ThreadSanitizer), -Doptimize=Debug|ReleaseSafe|ReleaseFast.
// The target stays native so Debian's system libraries are found (see
// ../shared/notes/deps-and-build.md §3.4). Warnings are errors.
const std = @import("std");

const core_srcs = [_][]const u8{
    "src/buf.c",          "src/err.c",          "src/log.c",       "src/cfg.c",
    "src/hmap.c",         "src/tmr.c",          "src/io.c",        "src/shard.c",
    "actors/mbox.c",      "actors/evt.c",       "actors/sess.c",   "actors/user.c",
    "actors/room.c",      "actors/pers.c",      "wire/http.c",     "wire/ws.c",
    "wire/eio.c",         "wire/sio.c",         "wire/json.c",     "wire/mp.c",
    "wire/jwt.c",         "persistence/store.c", "persistence/lite.c",
    "persistence/mongo.c",
};

// The client library (src/client/rc_client.h): kept out of ringcast-core because
// the broker never links it; ringcast-cli and the load harness do.
const client_srcs = [_][]const u8{"src/client/rc_client.c"};

// tests/unit/<path>.c, each its own executable (exit 0 pass, 1 fail, 77 skip).
const unit_tests = [_][]const u8{
    "wire/http_test",   "wire/ws_test",   "wire/eio_test",  "wire/jwt_test",
    "wire/json_test",   "wire/mp_test",   "wire/sio_test",  "actors/mbox_test", "actors/room_test",
    "persistence/lite_test", "persistence/mongo_test", "src/cfg_test", "src/log_test", "src/hmap_test",
    "src/tmr_test",     "client/rc_client_test", // includes src/client/rc_client.c itself
};

const cflags = [_][]const u8{
    "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
    "-fno-omit-frame-pointer",
};

fn linkDeps(m: *std.Build.Module) void {
    const pc: std.Build.Module.LinkSystemLibraryOptions = .{ .use_pkg_config = .force };
    m.linkSystemLibrary("liburing", pc);
    m.linkSystemLibrary("libmongoc-1.0", pc);
    m.linkSystemLibrary("libbson-1.0", pc);
    m.linkSystemLibrary("msgpack", pc); // the library is msgpackc: never fall back to -lmsgpack
    m.linkSystemLibrary("libcrypto", pc);
    m.linkSystemLibrary("sqlite3", pc);
    m.linkSystemLibrary("jansson", pc);
    m.linkSystemLibrary("wslay", .{ .use_pkg_config = .no }); // Debian ships no wslay.pc
    m.linkSystemLibrary("pthread", .{ .use_pkg_config = .no });
}

const Opts = struct {
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.OptimizeMode,
    tsan: bool,
};

// link: executables link the system libraries; the static core library only
// needs their headers (linking there would pack the .so files into the .a).
fn cModule(b: *std.Build, o: Opts, link: bool) *std.Build.Module {
    const m = b.createModule(.{
        .target = o.target,
        .optimize = o.optimize,
        .link_libc = true,
        .sanitize_thread = o.tsan,
    });
    m.addIncludePath(b.path("."));
    if (link) {
        linkDeps(m);
    } else {
        m.addSystemIncludePath(.{ .cwd_relative = "/usr/include/libmongoc-1.0" });
        m.addSystemIncludePath(.{ .cwd_relative = "/usr/include/libbson-1.0" });
    }
    return m;
}

pub fn build(b: *std.Build) void {
    const o = Opts{
        .target = b.standardTargetOptions(.{}),
        .optimize = b.standardOptimizeOption(.{}),
        .tsan = b.option(bool, "tsan", "Build with ThreadSanitizer") orelse false,
    };

    const core_mod = cModule(b, o, false);
    core_mod.addCSourceFiles(.{ .files = &core_srcs, .flags = &cflags });
    const core = b.addLibrary(.{ .linkage = .static, .name = "ringcast-core", .root_module = core_mod });

    const exe_mod = cModule(b, o, true);
    exe_mod.addCSourceFile(.{ .file = b.path("src/main.c"), .flags = &cflags });
    exe_mod.linkLibrary(core);
    const exe = b.addExecutable(.{ .name = "ringcast", .root_module = exe_mod });
    b.installArtifact(exe);

    const cli_mod = cModule(b, o, true);
    cli_mod.addCSourceFiles(.{ .files = &client_srcs, .flags = &cflags });
    cli_mod.addCSourceFile(.{ .file = b.path("src/client/cli.c"), .flags = &cflags });
    cli_mod.linkLibrary(core);
    b.installArtifact(b.addExecutable(.{ .name = "ringcast-cli", .root_module = cli_mod }));

    // perf/: the load harness and the floor (benchmarks, not tests; see docs/perf.md)
    const bench_mod = cModule(b, o, true);
    bench_mod.addCSourceFiles(.{ .files = &client_srcs, .flags = &cflags });
    bench_mod.addCSourceFiles(.{ .files = &.{ "perf/bench/bench.c", "perf/bench/hist.c" }, .flags = &cflags });
    bench_mod.linkLibrary(core);
    b.installArtifact(b.addExecutable(.{ .name = "ringcast-bench", .root_module = bench_mod }));
    const floor_mod = cModule(b, o, true);
    floor_mod.addCSourceFile(.{ .file = b.path("perf/floor/floor.c"), .flags = &cflags });
    floor_mod.linkLibrary(core);
    b.installArtifact(b.addExecutable(.{ .name = "ringcast-floor", .root_module = floor_mod }));

    const run_cmd = b.addRunArtifact(exe);
    run_cmd.step.dependOn(b.getInstallStep());
    if (b.args) |args| run_cmd.addArgs(args);
    b.step("run", "Build and start the broker").dependOn(&run_cmd.step);

    for (unit_tests) |name| {
        const m = cModule(b, o, true);
        m.addCSourceFile(.{ .file = b.path(b.fmt("tests/unit/{s}.c", .{name})), .flags = &cflags });
        m.linkLibrary(core);
        const base = std.fs.path.basename(name);
        const t = b.addExecutable(.{ .name = base, .root_module = m });
        const inst = b.addInstallArtifact(t, .{ .dest_dir = .{ .override = .{ .custom = "test-bin" } } });
        b.getInstallStep().dependOn(&inst.step);
    }

    const suites = [_][3][]const u8{
        .{ "test", "Run the whole test suite", "" },
        .{ "test-unit", "Run the unit tests", "--unit-only" },
        .{ "test-integration", "Run the integration tests", "--integration-only" },
    };
    for (suites) |s| {
        const r = b.addSystemCommand(&.{ "/usr/bin/python3", "tests/run.py" });
        if (s[2].len > 0) r.addArg(s[2]);
        r.setEnvironmentVariable("RINGCAST_BIN", b.getInstallPath(.bin, "ringcast"));
        r.setEnvironmentVariable("RINGCAST_TEST_BIN_DIR", b.getInstallPath(.prefix, "test-bin"));
        r.step.dependOn(b.getInstallStep());
        r.has_side_effects = true;
        b.step(s[0], s[1]).dependOn(&r.step);
    }
}
