import SharedKit
import SharedKitCore
import SharedKitRuntime

/// The visitor's side of share links: a page rendered here (so link previews get OpenGraph and Twitter
/// tags without running JavaScript) and the item's files, served only while the link is live. The page
/// never names the item's /media/ address: a revoked link or a deleted item stops the page and every file
/// behind it at once.
enum SharedPage {
    static func links(_ context: Context) -> ShareLinks {
        ShareLinks(db: context.db, appSecret: context.config.appSecret)
    }

    static func page(_ request: Request, _ context: Context) throws -> Response {
        let token = try request.parameter("token")
        // A view is a page fetched (GET); HEAD, link checkers' favourite, counts nothing.
        guard let shared = try links(context).open(token: token, countView: request.method == "GET") else { return gone() }
        var response = Response.text(
            html(shared, token: token, base: context.config.publicBaseURL), contentType: "text/html; charset=utf-8")
        // Revocation must take effect at once: browsers and proxies ask again each time.
        response.setHeader("Cache-Control", "no-store")
        response.setHeader("X-Robots-Tag", "noindex")
        return response
    }

    /// The image, or the video's file.
    static func file(_ request: Request, _ context: Context) throws -> Response {
        guard let shared = try links(context).open(token: try request.parameter("token"), countView: false) else { return gone() }
        return try media(shared.storageKey, request, context)
    }

    /// A video's poster (the preview image of link cards); 404 for an image.
    static func poster(_ request: Request, _ context: Context) throws -> Response {
        guard let shared = try links(context).open(token: try request.parameter("token"), countView: false),
            let poster = shared.posterKey
        else { return gone() }
        return try media(poster, request, context)
    }

    /// With files on this host nginx sends the file (X-Accel-Redirect to an internal location, ranges
    /// included) once access was checked here; from a bucket the function reads the object, or the one byte
    /// range asked for (players seek, and Safari plays video only through ranges). Either way the answer is
    /// not kept by caches, so a revoked link stops at once.
    static func media(_ key: String, _ request: Request, _ context: Context) throws -> Response {
        let headers = [("Cache-Control", "private, no-cache"), ("X-Robots-Tag", "noindex")]
        if let prefix = context.media.internalRedirectPrefix {
            return Response(status: .ok, headers: headers + [("X-Accel-Redirect", prefix + key)])
        }
        let type = [("Content-Type", contentType(of: key)), ("Accept-Ranges", "bytes")]
        if let range = request.header("range").flatMap(singleByteRange), let ranged = try context.media.read(key: key, range: range) {
            switch ranged.status {
            case 206:
                return Response(
                    status: HTTPStatus(206, "Partial Content"), headers: headers + type + [("Content-Range", ranged.contentRange ?? "")],
                    body: ranged.bytes)
            case 416:
                return Response(
                    status: HTTPStatus(416, "Range Not Satisfiable"),
                    headers: headers + (ranged.contentRange.map { [("Content-Range", $0)] } ?? []))
            default:
                return Response(status: .ok, headers: headers + type, body: ranged.bytes)
            }
        }
        return Response(status: .ok, headers: headers + type, body: try context.media.read(key: key))
    }

    /// `bytes=first-last`, `bytes=first-` or `bytes=-suffix` with digits only, passed on as it came; anything
    /// else (several ranges, other units) is ignored and the whole file answered, as RFC 9110 allows.
    static func singleByteRange(_ header: String) -> String? {
        let value = header.trimmingWhitespace()
        guard value.utf8.count <= 64, value.hasPrefix("bytes=") else { return nil }
        let spec = value.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2, !(spec[0].isEmpty && spec[1].isEmpty),
            spec.allSatisfy({ $0.allSatisfy { $0 >= "0" && $0 <= "9" } })
        else { return nil }
        if let first = Int(spec[0]), let last = Int(spec[1]), last < first { return nil }
        return String(value)
    }

    static func contentType(of key: String) -> String {
        if key.hasSuffix(".mp4") { return "video/mp4" }
        if key.hasSuffix(".png") { return "image/png" }
        if key.hasSuffix(".jpg") { return "image/jpeg" }
        return "image/webp"
    }

    /// The same page for a token that is not ours, a revoked link and a deleted item: nothing tells them apart.
    static func gone() -> Response {
        var response = Response.text(
            document(
                head: "<title>Link not available · Atelier</title>",
                body: """
                    <section class="shared-card">
                      <h1>This link is not available</h1>
                      <p>Its owner may have stopped sharing it, or deleted what it showed.</p>
                      <p><a class="button" href="/">Go to Atelier</a></p>
                    </section>
                    """), status: .notFound, contentType: "text/html; charset=utf-8")
        response.setHeader("Cache-Control", "no-store")
        response.setHeader("X-Robots-Tag", "noindex")
        return response
    }

    static func html(_ shared: ShareLinks.Shared, token: String, base: String) -> String {
        let page = "\(base)/s/\(token)"
        let file = "\(page)/file"
        let madeByMachine = shared.imageKind != ImageKind.uploaded.rawValue
        let what = shared.isVideo ? "video" : "image"
        let title = shared.prompt.isEmpty ? "A picture shared from Atelier" : clipped(shared.prompt, to: 70)
        var description = madeByMachine ? "An AI-generated \(what) made with Atelier" : "A picture shared from Atelier"
        if let name = shared.username { description += " by @\(name)" }
        description += "."
        let preview = shared.isVideo ? (shared.posterKey != nil ? "\(page)/poster" : nil) : file
        let animatedWebP = shared.isVideo && !shared.storageKey.hasSuffix(".mp4")

        var meta = """
            <title>\(Markup.escape(title)) · Atelier</title>
            <meta name="description" content="\(Markup.escape(description))">
            <meta name="robots" content="noindex">
            <link rel="canonical" href="\(Markup.escape(page))">
            <meta property="og:site_name" content="Atelier">
            <meta property="og:type" content="\(shared.isVideo ? "video.other" : "website")">
            <meta property="og:title" content="\(Markup.escape(title))">
            <meta property="og:description" content="\(Markup.escape(description))">
            <meta property="og:url" content="\(Markup.escape(page))">
            """
        if let preview {
            let type = shared.isVideo && !animatedWebP ? "image/webp" : contentType(of: shared.storageKey)
            meta += "\n<meta property=\"og:image\" content=\"\(Markup.escape(preview))\">"
            meta += "\n<meta property=\"og:image:type\" content=\"\(type)\">"
            if let width = shared.width, let height = shared.height, width > 0, height > 0 {
                meta += "\n<meta property=\"og:image:width\" content=\"\(width)\">"
                meta += "\n<meta property=\"og:image:height\" content=\"\(height)\">"
            }
            meta += "\n<meta property=\"og:image:alt\" content=\"\(Markup.escape(title))\">"
        }
        if shared.isVideo, !animatedWebP {
            meta += "\n<meta property=\"og:video\" content=\"\(Markup.escape(file))\">"
            meta += "\n<meta property=\"og:video:type\" content=\"video/mp4\">"
            if let width = shared.width, let height = shared.height, width > 0, height > 0 {
                meta += "\n<meta property=\"og:video:width\" content=\"\(width)\">"
                meta += "\n<meta property=\"og:video:height\" content=\"\(height)\">"
            }
        }
        meta += """

            <meta name="twitter:card" content="\(preview != nil ? "summary_large_image" : "summary")">
            <meta name="twitter:title" content="\(Markup.escape(title))">
            <meta name="twitter:description" content="\(Markup.escape(description))">
            """
        if let preview { meta += "\n<meta name=\"twitter:image\" content=\"\(Markup.escape(preview))\">" }

        let size = (shared.width ?? 0) > 0 && (shared.height ?? 0) > 0 ? " width=\"\(shared.width!)\" height=\"\(shared.height!)\"" : ""
        let media: String
        if shared.isVideo, !animatedWebP {
            let poster = shared.posterKey != nil ? " poster=\"/s/\(token)/poster\"" : ""
            media =
                "<video class=\"shared-media\" controls loop playsinline preload=\"metadata\"\(poster)\(size)><source src=\"/s/\(token)/file\" type=\"video/mp4\"></video>"
        } else {
            media =
                "<img class=\"shared-media\" src=\"/s/\(token)/file\" alt=\"\(Markup.escape(shared.prompt.isEmpty ? title : shared.prompt))\"\(size)>"
        }
        var facts: [String] = []
        if madeByMachine { facts.append("<span class=\"badge\">AI-generated</span>") }
        if let name = shared.username { facts.append("Shared by <strong>@\(Markup.escape(name))</strong>") }
        let caption = shared.prompt.isEmpty ? "" : "<p class=\"shared-prompt\">\(Markup.escape(shared.prompt))</p>"
        return document(
            head: meta,
            body: """
                <figure class="shared-card">
                  \(media)
                  <figcaption>
                    \(caption)
                    <p class="shared-facts">\(facts.joined(separator: " · "))</p>
                  </figcaption>
                </figure>
                <p class="shared-cta"><a class="button primary" href="/">Make your own with Atelier</a></p>
                """)
    }

    static func document(head: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        \(head)
        <link rel="icon" href="/favicon.svg" type="image/svg+xml">
        <link rel="stylesheet" href="/styles.css">
        </head>
        <body class="shared-body">
        <header class="site-header"><div class="bar"><a class="brand" href="/"><span class="brand-mark" aria-hidden="true"></span>Atelier</a></div></header>
        <main id="main" class="page shared-page">
        \(body)
        </main>
        </body>
        </html>

        """
    }

    static func clipped(_ text: String, to limit: Int) -> String {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).joined(separator: " ")
        guard words.count > limit else { return words }
        return String(words.prefix(limit - 1)).trimmingWhitespace().description + "…"
    }
}
