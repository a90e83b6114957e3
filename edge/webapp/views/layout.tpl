<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · 充装站</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/jsQR.js" defer></script>
<script src="/static/app.js" defer></script>
</head>
<body>
<header>
% if me:
  <a href="/" class="home">充装站 Station</a>
  <span class="who">{{me.name}} ({{me.id}}, {{me.role}})</span>
  <form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button>退出 Log out</button></form>
% else:
  <span class="home">充装站 Station</span>
% end
</header>
<main>
<h1>{{title}}</h1>
{{!base}}
</main>
</body>
</html>
