// swift-tools-version:6.0
import PackageDescription

// The upcoming features Hummingbird builds with: C modules stay internal imports of the kit and never
// leak into the functions that link it.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// Every HTTP function: one executable under Functions/<name>/ linking the kit.
let functions: [String: [Target.Dependency]] = [
    "health": ["SharedKit"],
    "register": ["SharedKit", "SharedKitHTTP"],
    "verify-otp": ["SharedKit"],
    "session": ["SharedKit"],
    "profile": ["SharedKit", "SharedKitHTTP"],
    "generate": ["SharedKit", "SharedKitHTTP", "SharedKitMedia"],
    "enhance": ["SharedKit", "SharedKitHTTP"],
    "keys": ["SharedKit"],
    "admin": ["SharedKit", "SharedKitHTTP", "SharedKitMedia"],
    "billing": ["SharedKit", "SharedKitHTTP"],
    "razorpay-webhook": ["SharedKit"],
    "renew-cron": ["SharedKit", "SharedKitHTTP"],
    "replicate-webhook": ["SharedKit", "SharedKitHTTP", "SharedKitMedia"],
    "maintenance-cron": ["SharedKit", "SharedKitHTTP", "SharedKitMedia"],
    "transform": ["SharedKit", "SharedKitHTTP", "SharedKitMedia"],
    "video": ["SharedKit", "SharedKitHTTP", "SharedKitMedia"],
    "share": ["SharedKit", "SharedKitHTTP"],
]

func system(_ name: String, _ pkg: String, _ apt: String) -> Target {
    .systemLibrary(name: name, path: "CLibs/\(name)", pkgConfig: pkg, providers: [.apt([apt])])
}

let package = Package(
    name: "Atelier",
    products: [
        .library(name: "SharedKit", targets: ["SharedKit", "SharedKitHTTP", "SharedKitMedia"]),
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

        // The kit proper: runtime, PostgreSQL, Redis, crypto, configuration. libcurl and libvips live in
        // their own modules of the kit so that a function which needs neither does not load them (each
        // pulls dozens of shared libraries, which shows in cold start and RSS).
        .target(
            name: "SharedKit",
            dependencies: ["CFastCGI", "CPostgres", "CRedis", "CSodium", "CZxcvbn", .product(name: "Logging", package: "swift-log")],
            path: "SharedKit",
            exclude: ["HTTP", "Media"],
            swiftSettings: strict
        ),
        .target(
            name: "SharedKitHTTP", dependencies: ["SharedKit", "CCurl", .product(name: "Logging", package: "swift-log")],
            path: "SharedKit/HTTP", swiftSettings: strict),
        .target(
            name: "SharedKitMedia", dependencies: ["SharedKit", "SharedKitHTTP", "CVips", .product(name: "Logging", package: "swift-log")],
            path: "SharedKit/Media", swiftSettings: strict),

        .executableTarget(
            name: "atelier",
            dependencies: ["SharedKit", "SharedKitHTTP", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "CLI/atelier", swiftSettings: strict),
        .executableTarget(name: "runtime-probe", dependencies: ["SharedKit"], path: "Tests/Fixtures/runtime-probe", swiftSettings: strict),
        .testTarget(
            name: "SharedKitTests",
            dependencies: ["SharedKit", "SharedKitHTTP", "SharedKitMedia"],
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
