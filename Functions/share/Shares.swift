import SharedKit
import SharedKitCore
import SharedKitRuntime

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The owner's side of share links: share an image or a video, list the live links, revoke one.
enum Shares {
    struct CreateShare: Decodable {
        let imageId: String?
        let videoId: String?
        let showUsername: Bool?
    }

    /// A link as the API answers it: the address to hand out, what it shows, and its view count.
    struct LinkView: JSONWritable {
        let link: ShareLinks.Link
        let url: String

        init(_ link: ShareLinks.Link, _ links: ShareLinks, _ context: Context) {
            self.link = link
            self.url = "\(context.config.publicBaseURL)/s/\(links.token(for: link.id))"
        }

        func write(to json: inout JSONWriter) {
            json.object {
                $0.field("id", link.id)
                $0.field("url", url)
                $0.field("image_id", link.imageId)
                $0.field("video_id", link.videoId)
                $0.field("show_username", link.showUsername)
                $0.field("views", link.views)
                $0.field("created_at", link.createdAt)
            }
        }
    }

    struct LinkList: JSONWritable {
        let items: [LinkView]
        let hasMore: Bool

        func write(to json: inout JSONWriter) {
            json.object {
                $0.field("items", items)
                $0.field("has_more", hasMore)
            }
        }
    }

    static func links(_ context: Context) -> ShareLinks {
        ShareLinks(db: context.db, appSecret: context.config.appSecret)
    }

    /// 201 with a new link, or 200 with the item's live link (its `show_username` set as asked).
    static func create(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        let input = try request.decode(CreateShare.self)
        let noImage = HTTPError(.notFound, code: "not_found", message: "No such image.")
        let noVideo = HTTPError(.notFound, code: "not_found", message: "No such video.")
        let item: ShareLinks.Item
        switch (input.imageId, input.videoId) {
        case (let image?, nil):
            guard let id = ImageID(image) else { throw noImage }
            item = .image(id)
        case (nil, let video?):
            guard let id = VideoID(video) else { throw noVideo }
            item = .video(id)
        default:
            throw HTTPError(.badRequest, code: "invalid_item", message: "Name what to share: one 'image_id' or one 'video_id'.")
        }
        let missing =
            switch item {
            case .image: noImage
            case .video: noVideo
            }
        let links = links(context)
        guard let (link, created) = try links.share(item, userID: user.id, showUsername: input.showUsername ?? false) else {
            throw missing
        }
        var response = Response.json(LinkView(link, links, context), status: created ? .created : .ok)
        response.setHeader("Location", "/api/v1/shares/\(link.id)")
        return response
    }

    static func list(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        let links = links(context)
        let live = try links.live(userID: user.id)
        return .json(LinkList(items: live.links.map { LinkView($0, links, context) }, hasMore: live.more))
    }

    /// 204; the page and its media stop answering at once.
    static func revoke(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        guard let id: ID<ShareLinks.Link> = try request.id("id"), try links(context).revoke(id: id, userID: user.id) else {
            throw HTTPError(.notFound, code: "not_found", message: "No such share link.")
        }
        return .empty()
    }
}
