//! The status page served at the admin listener's `/`: one self-contained HTML document (inline
//! style and script, no external asset) rendered on the server from a [`View`], so it reads as
//! plain tables without JavaScript. Its small script then fetches `/status/view.json` every
//! 2 s and rebuilds the same tables with DOM text nodes (never `innerHTML`: agent ids and
//! metadata are chosen by agents). It lays out; the content comes from [`super::view`].

use super::view::{Table, View};

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1d2330;color:#fff;padding:10px 16px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:17px;margin:0}
#updated{color:#b8c0cc;font-size:12px}
#updated.stale{color:#ffb4a8;font-weight:600}
main{padding:8px 16px 24px;max-width:1400px}
#problems{margin:10px 0;padding:8px 12px;background:#fde8e6;border-left:4px solid #c0392b}
#problems.none{background:#e6f4ea;border-left-color:#2e7d32}
#problems ul{margin:4px 0 0;padding-left:20px}
h2{font-size:15px;margin:18px 0 6px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;min-width:50%;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #e1e5eb;text-align:left;white-space:nowrap;vertical-align:top}
th{background:#e9edf2;font-weight:600;font-size:13px}
tr.problem td{background:#fde8e6}
tr.problem td:last-child{color:#a3261b;font-weight:600;white-space:normal}
td.empty{color:#6b7380;font-style:italic}
footer{color:#6b7380;font-size:12px;padding:0 16px 16px}
"#;

/// Polls the view every 2 s and rebuilds `<main>`; marks the timestamp stale when a poll fails.
const SCRIPT: &str = r#"
(function(){
  function el(tag, text, cls){var e=document.createElement(tag);if(text!==undefined)e.textContent=text;if(cls)e.className=cls;return e;}
  function table(t){
    var wrap=el('section');wrap.appendChild(el('h2',t.title));
    var box=el('div',undefined,'scroll');var tb=el('table');tb.id=t.id;
    var head=el('tr');t.columns.forEach(function(c){head.appendChild(el('th',c));});
    var thead=el('thead');thead.appendChild(head);tb.appendChild(thead);
    var body=el('tbody');
    if(t.rows.length===0){var r=el('tr');var d=el('td',t.empty,'empty');d.colSpan=t.columns.length;r.appendChild(d);body.appendChild(r);}
    t.rows.forEach(function(row){var r=el('tr',undefined,row.problem?'problem':'');row.cells.forEach(function(c){r.appendChild(el('td',c));});body.appendChild(r);});
    tb.appendChild(body);box.appendChild(tb);wrap.appendChild(box);return wrap;
  }
  function problems(list){
    var box=el('div',undefined,list.length?'':'none');box.id='problems';
    box.appendChild(el('strong',list.length?'Needs attention':'Everything looks fine'));
    if(list.length){var ul=el('ul');list.forEach(function(p){ul.appendChild(el('li',p));});box.appendChild(ul);}
    return box;
  }
  function render(view){
    document.getElementById('headline').textContent=view.headline;
    var main=document.createElement('main');main.id='main';
    main.appendChild(problems(view.problems));
    view.tables.forEach(function(t){main.appendChild(table(t));});
    document.getElementById('main').replaceWith(main);
  }
  function stamp(text, stale){var u=document.getElementById('updated');u.textContent=text;u.className=stale?'stale':'';}
  function poll(){
    fetch('status/view.json',{cache:'no-store',credentials:'same-origin'})
      .then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.json();})
      .then(function(v){render(v);stamp('live, updated '+new Date().toLocaleTimeString(),false);})
      .catch(function(e){stamp('not updating: '+e.message,true);})
      .then(function(){setTimeout(poll,2000);});
  }
  stamp('live, refreshing every 2 s',false);
  setTimeout(poll,2000);
})();
"#;

/// The whole page for `view`.
pub fn render_page(view: &View) -> String {
    let mut html = String::with_capacity(16 * 1024);
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    html.push_str("<title>sentinel status</title><style>");
    html.push_str(STYLE);
    html.push_str("</style></head><body><header><h1 id=\"headline\">");
    html.push_str(&escape(&view.headline));
    html.push_str("</h1><span id=\"updated\">snapshot taken when this page was loaded (reload to refresh)</span></header>\n");
    html.push_str("<main id=\"main\">");
    push_problems(&mut html, &view.problems);
    for table in &view.tables {
        push_table(&mut html, table);
    }
    html.push_str("</main>\n<footer>JSON: <a href=\"status.json\">status.json</a> · ");
    html.push_str("<a href=\"agents\">agents</a> · <a href=\"metrics\">metrics</a> · ");
    html.push_str("<a href=\"health\">health</a></footer>\n<script>");
    html.push_str(SCRIPT);
    html.push_str("</script></body></html>\n");
    html
}

fn push_problems(html: &mut String, problems: &[String]) {
    if problems.is_empty() {
        html.push_str(
            "<div id=\"problems\" class=\"none\"><strong>Everything looks fine</strong></div>",
        );
        return;
    }
    html.push_str("<div id=\"problems\"><strong>Needs attention</strong><ul>");
    for problem in problems {
        html.push_str("<li>");
        html.push_str(&escape(problem));
        html.push_str("</li>");
    }
    html.push_str("</ul></div>");
}

fn push_table(html: &mut String, table: &Table) {
    html.push_str("<section><h2>");
    html.push_str(&escape(&table.title));
    html.push_str("</h2><div class=\"scroll\"><table id=\"");
    html.push_str(&escape(&table.id));
    html.push_str("\"><thead><tr>");
    for column in &table.columns {
        html.push_str("<th>");
        html.push_str(&escape(column));
        html.push_str("</th>");
    }
    html.push_str("</tr></thead><tbody>");
    if table.rows.is_empty() {
        html.push_str(&format!(
            "<tr><td class=\"empty\" colspan=\"{}\">{}</td></tr>",
            table.columns.len(),
            escape(&table.empty)
        ));
    }
    for row in &table.rows {
        html.push_str(if row.problem {
            "<tr class=\"problem\">"
        } else {
            "<tr>"
        });
        for cell in &row.cells {
            html.push_str("<td>");
            html.push_str(&escape(cell));
            html.push_str("</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></div></section>\n");
}

/// Text made safe for HTML element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::view::Row;
    use super::*;

    #[test]
    fn agent_chosen_text_is_escaped_and_problems_are_marked() {
        let view = View {
            headline: "sentinel".into(),
            problems: vec!["route <b>".into()],
            tables: vec![Table {
                id: "connections".into(),
                title: "Agent connections".into(),
                columns: vec!["agent_id".into()],
                rows: vec![Row {
                    cells: vec!["<script>alert(1)</script>".into()],
                    problem: true,
                }],
                empty: String::new(),
            }],
        };
        let html = render_page(&view);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert(1)"));
        assert!(html.contains("<tr class=\"problem\"><td>"));
        assert!(html.contains("<li>route &lt;b&gt;</li>"));
        assert!(html.contains("<table id=\"connections\">"));
    }
}
