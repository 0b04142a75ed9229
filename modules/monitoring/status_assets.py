"""The status page's inline CSS and JavaScript, and the Content-Security-Policy that allows exactly them.

Inline, so the page needs nothing from the internet (offline, locked-down networks).
The policy allows these two blocks by hash and nothing else: no other script,
no inline event handler, no image, no external style. If escaping ever failed,
an injected `onerror=` still would not run.
"""
from __future__ import annotations

import base64
import hashlib

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 1.5rem 2rem;color:#1f2328;
background:#fff}
h1{font-size:1.4rem;margin:1rem 0 .3rem}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.meta{color:#59636e;margin:.2rem 0}.meta b{color:#1f2328}
a{color:#0969da}
.up{color:#1a7f37;font-weight:600}.down{color:#cf222e;font-weight:600}.unknown{color:#9a6700;font-weight:600}
ul.counts{list-style:none;padding:0;margin:.6rem 0;display:flex;flex-wrap:wrap;gap:.5rem}
ul.counts li{border:1px solid #d1d9e0;border-radius:6px;padding:.25rem .7rem;background:#f6f8fa}
ul.counts b{font-size:1.1rem;margin-right:.25rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e6e9ec;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0;white-space:nowrap;font-size:.9rem}
th[aria-sort]{cursor:pointer}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.t{white-space:nowrap;font-variant-numeric:tabular-nums}td.n{text-align:right}
td.r,td.p{overflow-wrap:break-word}
table.projects{table-layout:fixed}table.projects th{white-space:normal}
.projects th:nth-child(1){width:18%}.projects th:nth-child(2){width:9%}.projects th:nth-child(3),
.projects th:nth-child(4){width:10.5%}.projects th:nth-child(5){width:23%}.projects th:nth-child(6){width:15%}
.projects th:nth-child(7){width:8%}.projects th:nth-child(8){width:6%}
small{display:block;color:#59636e}
.s{font-weight:600;white-space:nowrap}
tr.failing .s{color:#cf222e}tr.stuck .s{color:#bc4c00}tr.never .s{color:#8250df}tr.stale .s{color:#9a6700}
tr.healthy .s{color:#1a7f37}tr.scheduled .s{color:#0969da}
tr.failing td:first-child{box-shadow:inset 4px 0 #cf222e}tr.stuck td:first-child{box-shadow:inset 4px 0 #bc4c00}
tr.never td:first-child{box-shadow:inset 4px 0 #8250df}tr.stale td:first-child{box-shadow:inset 4px 0 #d4a72c}
li.failing b{color:#cf222e}li.stuck b{color:#bc4c00}li.never b{color:#8250df}li.stale b{color:#9a6700}
li.healthy b{color:#1a7f37}li.scheduled b{color:#0969da}
details summary{cursor:pointer;font-weight:600;margin:1rem 0 .3rem}
#q{font:inherit;padding:.3rem .5rem;width:22rem;max-width:100%;margin:.6rem 0}
.empty{color:#59636e;font-style:italic}
"""

# Filter: hides rows whose text lacks the query (and opens the collapsed sections so their
# matches show). Sort: a header click sorts that table by the column, numbers as numbers.
JS = """
(function(){
var q=document.getElementById('q');q.hidden=false;
var rows=Array.prototype.slice.call(document.querySelectorAll('tbody tr'));
var text=rows.map(function(r){return r.textContent.toLowerCase();});
var sections=document.querySelectorAll('details');
q.addEventListener('input',function(){
var v=q.value.trim().toLowerCase();
for(var i=0;i<rows.length;i++){rows[i].hidden=v!==''&&text[i].indexOf(v)<0;}
if(v){sections.forEach(function(d){d.open=true;});}
});
function key(td){var v=td.getAttribute('data-v');return v===null?td.textContent:v;}
document.querySelectorAll('th').forEach(function(th){
th.setAttribute('aria-sort','none');
th.addEventListener('click',function(){
var table=th.closest('table'),body=table.tBodies[0],col=th.cellIndex;
var asc=th.getAttribute('aria-sort')!=='ascending';
table.querySelectorAll('th').forEach(function(h){h.setAttribute('aria-sort','none');});
th.setAttribute('aria-sort',asc?'ascending':'descending');
var list=Array.prototype.slice.call(body.rows);
list.sort(function(a,b){
var x=key(a.cells[col]),y=key(b.cells[col]),nx=parseFloat(x),ny=parseFloat(y),c;
if(!isNaN(nx)&&!isNaN(ny)&&String(nx)===x.trim()&&String(ny)===y.trim()){c=nx-ny;}
else{c=x.localeCompare(y);}
return asc?c:-c;});
var frag=document.createDocumentFragment();list.forEach(function(r){frag.appendChild(r);});
body.appendChild(frag);
});});
})();
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(JS)}; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
