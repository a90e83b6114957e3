% from interlock.reasons import text as flag_text
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
  <p id="flag">复秤 Re-weigh {{result.reweigh_kg}} kg{{': ' + result.flag.value + ' ' + flag_text(result.flag) + ' — 禁止出站 / dispatch blocked' if result.flag else ''}}</p>
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
      <label><input type="radio" name="item_{{item.id}}" value="pass" required{{!' checked' if get('ticked', {}).get(item.id) else ''}}> 合格</label>
      <label><input type="radio" name="item_{{item.id}}" value="fail"{{!' checked' if get('confirm_kg') is not None and not get('ticked', {}).get(item.id) else ''}}> 不合格</label>
    </div>
% end
  </fieldset>
% if kind == 'post':
  <label>复秤毛重 Re-weigh gross kg ({{'空: 读复秤台 blank: read the check scale' if check_scale else '空: 用充装秤终重 blank: the filling scale\'s final reading'}})
    <input name="reweigh_kg" id="reweigh_kg" inputmode="decimal" value="{{get('confirm_kg') or ''}}"></label>
% if get('confirm_kg') is not None:
  <label class="confirm"><input type="checkbox" name="confirm_kg" id="confirm_kg" value="{{confirm_kg}}" required>
    确认复秤 {{confirm_kg}} kg 无误 / I confirm the re-weigh of {{confirm_kg}} kg</label>
% end
% end
  <button id="record">提交 Record check</button>
</form>
<p><a href="/check/{{kind}}">下一瓶 Next cylinder</a></p>
% end
