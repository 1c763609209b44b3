/// The console's stylesheet and icon, served from the binary (the pages load nothing else, and the
/// Content-Security-Policy allows nothing else).
enum ConsoleStyle {
    /// Okabe–Ito colours, told apart with the common colour-vision deficiencies.
    static let palette = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"]

    static let css: String = {
        var css = """
            :root{--fg:#1b1f24;--muted:#57606a;--bg:#fff;--line:#d0d7de;--accent:#0b5cad;--bad:#a40e26}
            *{box-sizing:border-box}
            body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);\
            background:var(--bg)}
            .skip{position:absolute;left:-9999px;top:0}
            .skip:focus{left:.5rem;top:.5rem;background:var(--bg);padding:.25rem .5rem;z-index:1}
            header{display:flex;flex-wrap:wrap;gap:.5rem 1.25rem;align-items:center;padding:.5rem 1rem;\
            border-bottom:1px solid var(--line)}
            header .brand{font-weight:700}
            header form{margin:0 0 0 auto}
            nav ul{display:flex;flex-wrap:wrap;gap:.25rem 1rem;list-style:none;margin:0;padding:0}
            a{color:var(--accent)}
            a[aria-current=page]{font-weight:700;text-decoration:none;border-bottom:3px solid var(--accent)}
            :focus-visible{outline:3px solid #d4a000;outline-offset:2px}
            main{padding:1rem;max-width:90rem;margin:0 auto}
            h1{font-size:1.5rem;margin:.25rem 0 .75rem}
            h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
            .who,.note{color:var(--muted)}
            .scroll{overflow-x:auto;max-width:100%}
            table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.9rem;margin:.5rem 0}
            caption{text-align:left;font-weight:600;padding:.25rem 0}
            th,td{border-bottom:1px solid var(--line);padding:.25rem .5rem;text-align:left;white-space:nowrap}
            .n{text-align:right}
            tfoot td{font-weight:700}
            figure{margin:1rem 0}
            figure svg{width:100%;height:auto;max-width:48rem;display:block}
            figcaption{color:var(--muted);font-size:.9rem}
            .legend{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0;margin:.25rem 0}
            svg.sw{width:.8em;height:.8em;display:inline-block;vertical-align:baseline}
            .axis{font-size:13px;fill:var(--muted)}
            .grid{stroke:var(--line);stroke-width:1}
            .line{fill:none;stroke-width:2.5}
            .dashed{stroke-dasharray:6 4}
            .now{stroke:var(--muted);stroke-dasharray:2 3}
            .total{fill:#57606a}.up{fill:#d55e00}.down{fill:#009e73}
            form.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end;margin:.5rem 0 1rem}
            form.filters label,form.signin label{display:flex;flex-direction:column;font-size:.9rem;max-width:100%}
            select{max-width:100%}
            input,select,button{font:inherit;padding:.35rem .6rem;border:1px solid var(--muted);border-radius:4px}
            button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
            header button{background:var(--bg);color:var(--accent)}
            form.signin{display:flex;flex-direction:column;gap:.75rem;max-width:24rem}
            .error{color:var(--bad);font-weight:600}
            dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem}
            dl.facts dt{color:var(--muted)}
            dl.facts dd{margin:0}

            """
        for (i, colour) in palette.enumerated() {
            css += ".s\(i){fill:\(colour)}.l\(i){stroke:\(colour)}\n"
        }
        return css
    }()

    static let favicon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" \
        fill="#0b5cad"/><rect x="3" y="8" width="2" height="5" fill="#fff"/><rect x="7" y="5" width="2" height="8" \
        fill="#fff"/><rect x="11" y="3" width="2" height="10" fill="#fff"/></svg>
        """
}
