import SharedKit
import SharedKitRuntime
import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif

// A function made for the runtime's tests: each route exercises one behaviour of the loop.
struct Echo: Codable {
    let name: String
    let count: Int
}

struct Boom: Error {}

Services.start(function: "runtime-probe").serve(
    Router<Context>()
        .get(
            "/probe/ok",
            { request, _ in
                try .json(["path": request.path, "client": request.clientAddress, "request_id": request.id])
            }
        )
        .get("/probe/boom", { _, _ in throw Boom() })
        .get(
            "/probe/teapot",
            { _, _ in
                throw HTTPError(HTTPStatus(418, "I'm a teapot"), code: "teapot", message: "Short and stout.")
            }
        )
        .post("/probe/echo", { request, _ in try .json(try request.decode(Echo.self)) })
        .get(
            "/probe/items/:id",
            { request, _ in
                try .json(["id": try request.parameter("id"), "q": request.query("q") ?? ""])
            }
        )
        .get(
            "/probe/db",
            { _, context in
                let row = try context.db.query("SELECT pg_backend_pid() AS pid").first!
                return try .json(["pid": try row.get("pid", as: Int.self)])
            }
        )
        .get(
            "/probe/slow",
            { request, _ in
                let ms = Int(request.query("ms") ?? "200") ?? 200
                // The test's readiness signal: this file exists once the request is being worked on.
                if let started = request.query("started") { close(creat(started, 0o644)) }
                var ts = timespecFrom(ms: ms)
                nanosleepShim(&ts)
                return try .json(["slept_ms": ms])
            })
)
