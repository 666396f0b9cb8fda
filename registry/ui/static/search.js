// Search as you type: the list and pager come from /ui/api/repos; names are set as text,
// never as HTML. Without this script the form and pager links do the same.
(function () {
  var input = document.getElementById("search");
  var list = document.getElementById("repos");
  var count = document.getElementById("count");
  var pager = document.getElementById("pager");
  if (!input || !list) return;
  var timer = null, seq = 0;
  // location.origin never carries the user:password of a URL, which fetch refuses.
  var base = location.origin;

  function show(data) {
    list.textContent = "";
    data.repos.forEach(function (name) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.className = "repo";
      a.href = "/ui/repo/" + name.split("/").map(encodeURIComponent).join("/");
      a.textContent = name;
      li.appendChild(a);
      list.appendChild(li);
    });
    count.textContent = data.total + (data.total === 1 ? " repository" : " repositories") +
      (data.query ? " matching “" + data.query + "”" : "");
    pager.textContent = "";
    function link(id, label, page) {
      var a = document.createElement("a");
      a.id = id;
      a.href = "/ui/?q=" + encodeURIComponent(data.query) + "&page=" + page;
      a.textContent = label;
      a.addEventListener("click", function (e) { e.preventDefault(); load(page); });
      pager.appendChild(a);
    }
    if (data.page > 1) link("prev", "← previous", data.page - 1);
    var info = document.createElement("span");
    info.id = "pageinfo";
    info.textContent = "page " + data.page + " of " + data.pages;
    pager.appendChild(info);
    if (data.page < data.pages) link("next", "next →", data.page + 1);
  }

  function load(page) {
    var mine = ++seq;
    var q = input.value.trim();
    var pageURL = "/ui/?q=" + encodeURIComponent(q) + (page > 1 ? "&page=" + page : "");
    fetch(base + "/ui/api/repos?q=" + encodeURIComponent(q) + "&page=" + page, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(function (data) {
        if (mine !== seq) return; // an older answer after a newer one
        show(data);
        history.replaceState(null, "", pageURL);
      })
      .catch(function () {
        // whatever kept the script from asking, the page itself can answer
        if (mine === seq) location.href = base + pageURL;
      });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { load(1); }, 120);
  });
  input.form.addEventListener("submit", function (e) { e.preventDefault(); load(1); });
})();
