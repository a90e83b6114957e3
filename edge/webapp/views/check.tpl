% rebase('layout', title=('充装前检查 Pre-fill check' if kind == 'pre' else '充装后检查 Post-fill check'))
% if problem:
<p class="problem" id="problem">{{problem}}</p>
% end
% if result is not None:
<div id="result" class="{{'ok' if result.passed else 'bad'}}">
  <p class="verdict">{{('合格 PASSED' if result.passed else '不合格 REFUSED')}} · {{result.cylinder_id}}</p>
% if result.failed:
  <p>不合格项 Failed items:</p>
  <ul id="failed">
% for item in result.failed:
    <li>{{item.zh}} / {{item.en}}</li>
% end
  </ul>
% end
% if result.reweigh_kg is not None:
  <p id="flag">复秤 Re-weigh {{result.reweigh_kg}} kg{{': ' + result.flag.value if result.flag else ''}}{{' — 需倒残，禁止出站 / decant, dispatch blocked' if result.flag and result.flag.value == 'OVERFILLED' else ''}}</p>
% end
% if kind == 'pre' and not result.passed:
  <p>此瓶不得充装，请放置待检 / not to be filled: set it aside for inspection.</p>
% end
</div>
% end
% if cylinder is None:
<form method="get" action="/check/{{kind}}" id="lookup">
  % include('scan', field='code', value=code, placeholder='扫描气瓶码 Scan the cylinder')
  <button id="find">查找 Find</button>
</form>
% else:
% include('cylinder', c=cylinder)
<form method="post" action="/check/{{kind}}" id="checklist">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="code" value="{{code}}">
  <fieldset>
% for item in items:
    <div class="item">
      <span>{{item.zh}}<br><small>{{item.en}}</small></span>
      <label><input type="radio" name="item_{{item.id}}" value="pass" required> 合格</label>
      <label><input type="radio" name="item_{{item.id}}" value="fail"> 不合格</label>
    </div>
% end
  </fieldset>
% if kind == 'post':
  <label>复秤毛重 Re-weigh gross kg ({{'空: 读复秤台 blank: read the check scale' if check_scale else '空: 用充装秤终重 blank: the filling scale\'s final reading'}})
    <input name="reweigh_kg" id="reweigh_kg" inputmode="decimal" pattern="[0-9]+([.][0-9]+)?"></label>
% end
  <button id="record">提交 Record check</button>
</form>
<p><a href="/check/{{kind}}">下一瓶 Next cylinder</a></p>
% end
