import SharedKit
import SharedKitCore
import SharedKitRuntime

/// API keys are managed from a browser session only: a key cannot mint or revoke keys.
enum Keys {
    struct CreateKey: Decodable {
        let name: String
    }

    struct KeyList: JSONWritable {
        let items: [APIKeys.Listed]

        func write(to json: inout JSONWriter) {
            json.object { $0.field("items", items) }
        }
    }

    static func list(_ request: Request, _ context: Context) throws -> Response {
        .json(KeyList(items: try context.read(request, .browser, APIKeys.Listed.self) { APIKeys.listQuery(userID: $0) }.rows))
    }

    /// 201 with the secret, shown this once.
    static func create(_ request: Request, _ context: Context) throws -> Response {
        let (user, _) = try context.authenticate(request)
        let input = try request.decode(CreateKey.self)
        let maxActive = try context.config.integer("API_KEYS_MAX_ACTIVE", default: APIKeys.maxActivePerUserDefault, range: 1...1000)
        let issued = try APIKeys(context.db).issue(userID: user.id, name: input.name, maxActive: maxActive)
        var response = try Response.json(issued, status: .created)
        response.setHeader("Location", "/api/v1/keys/\(issued.id)")
        return response
    }

    static func revoke(_ request: Request, _ context: Context) throws -> Response {
        let (user, _) = try context.authenticate(request)
        guard let id: ID<APIKeys.Listed> = try request.id("id") else { throw APIKeys.notFound }
        try APIKeys(context.db).revoke(userID: user.id, id: id)
        return .empty()
    }
}
