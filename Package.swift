// swift-tools-version:6.0
import PackageDescription

// The upcoming features Hummingbird builds with: C modules stay internal imports of the kit and never
// leak into the functions that link it.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The kit's layers, each depending only on those below it (the compiler refuses an import upwards):
/// core (configuration, JSON, crypto, clocks, counters) → runtime (FastCGI loop, requests, routing, errors
/// as HTTP) and stores (PostgreSQL, Redis) → domain (`SharedKit`: accounts, sessions, keys, quota, billing,
/// generation, and the services a function builds) → integrations (HTTP clients, then media).
let kit: [Target.Dependency] = ["SharedKit", "SharedKitCore", "SharedKitRuntime", "SharedKitStores"]

/// Every HTTP function: one executable under Functions/<name>/ linking the kit.
let functions: [String: [Target.Dependency]] = [
    "health": kit,
    "register": kit + ["SharedKitHTTP"],
    "verify-otp": kit,
    "session": kit,
    "profile": kit + ["SharedKitHTTP"],
    "generate": kit + ["SharedKitHTTP", "SharedKitMedia"],
    "enhance": kit + ["SharedKitHTTP"],
    "keys": kit,
    "admin": kit + ["SharedKitHTTP", "SharedKitMedia"],
    "billing": kit + ["SharedKitHTTP"],
    "razorpay-webhook": kit,
    "renew-cron": kit + ["SharedKitHTTP"],
    "replicate-webhook": kit + ["SharedKitHTTP", "SharedKitMedia"],
    "maintenance-cron": kit + ["SharedKitHTTP", "SharedKitMedia"],
    "transform": kit + ["SharedKitHTTP", "SharedKitMedia"],
    "video": kit + ["SharedKitHTTP", "SharedKitMedia"],
    "share": kit + ["SharedKitHTTP"],
]

func system(_ name: String, _ pkg: String, _ apt: String) -> Target {
    .systemLibrary(name: name, path: "CLibs/\(name)", pkgConfig: pkg, providers: [.apt([apt])])
}

let package = Package(
    name: "Atelier",
    products: [
        .library(
            name: "SharedKit",
            targets: ["SharedKitCore", "SharedKitRuntime", "SharedKitStores", "SharedKit", "SharedKitHTTP", "SharedKitMedia"]),
        .executable(name: "atelier", targets: ["atelier"]),
    ] + functions.keys.sorted().map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        // LogHandler.log(event:), which JSONLogHandler implements, is swift-log 1.11's.
        .package(url: "https://github.com/apple/swift-log", from: "1.11.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        system("CFastCGI", "fcgi", "libfcgi-dev"),
        system("CPostgres", "libpq", "libpq-dev"),
        system("CRedis", "hiredis", "libhiredis-dev"),
        system("CCurl", "libcurl", "libcurl4-openssl-dev"),
        system("CSodium", "libsodium", "libsodium-dev"),
        system("CVips", "vips", "libvips-dev"),
        .systemLibrary(name: "CZxcvbn", path: "CLibs/CZxcvbn", providers: [.apt(["libzxcvbn-dev"])]),

        // The kit, bottom up. libcurl and libvips live in the integration modules so that a function which
        // needs neither does not load them (each pulls dozens of shared libraries, which shows in cold
        // start and RSS).
        .target(name: "SharedKitCore", dependencies: ["CSodium"], path: "SharedKit/Core", swiftSettings: strict),
        .target(
            name: "SharedKitRuntime",
            dependencies: ["SharedKitCore", "CFastCGI", .product(name: "Logging", package: "swift-log")],
            path: "SharedKit/Runtime", swiftSettings: strict),
        .target(
            name: "SharedKitStores", dependencies: ["SharedKitCore", "CPostgres", "CRedis"], path: "SharedKit/Stores",
            swiftSettings: strict),
        .target(
            name: "SharedKit",
            dependencies: [
                "SharedKitCore", "SharedKitRuntime", "SharedKitStores", "CSodium", "CZxcvbn",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "SharedKit/Domain",
            swiftSettings: strict
        ),
        .target(
            name: "SharedKitHTTP", dependencies: kit + ["CCurl", .product(name: "Logging", package: "swift-log")],
            path: "SharedKit/HTTP", swiftSettings: strict),
        .target(
            name: "SharedKitMedia", dependencies: kit + ["SharedKitHTTP", "CVips", .product(name: "Logging", package: "swift-log")],
            path: "SharedKit/Media", swiftSettings: strict),

        .executableTarget(
            name: "atelier",
            dependencies: kit + ["SharedKitHTTP", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "CLI/atelier", swiftSettings: strict),
        .executableTarget(name: "runtime-probe", dependencies: kit, path: "Tests/Fixtures/runtime-probe", swiftSettings: strict),
        .testTarget(
            name: "SharedKitTests",
            dependencies: kit + ["SharedKitHTTP", "SharedKitMedia"],
            path: "Tests/SharedKitTests",
            swiftSettings: strict
        ),
    ]
        + functions.keys.sorted().map {
            .executableTarget(
                name: $0, dependencies: functions[$0]! + [.product(name: "Logging", package: "swift-log")],
                path: "Functions/\($0)", swiftSettings: strict)
        }
)
